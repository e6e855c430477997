"""Generated memes: caption phrases drawn on backgrounds, for tests, benchmarks and sample corpora.

`render_meme(background, top, bottom, style)` draws

- ``"classic"``: white bold capitals with a black outline, top and bottom of the picture;
- ``"modern"``: black text on a white bar above the picture (top and bottom joined).

Font: DejaVu Sans Bold when installed (Debian `fonts-dejavu-core`; Bitstream Vera licence with
DejaVu's public-domain changes: free to use, embed and redistribute), else Pillow's bundled
default font scaled (`ImageFont.load_default(size=...)`, Aileron Regular, CC0), so rendering works
on any machine with Pillow ≥ 10.1. `FONT_LICENCE` names the one in use.
`photo_background(seed)` makes a photo-like scene (sky/ground gradient, soft blobs, noise).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Style = Literal["classic", "modern"]
DEJAVU_BOLD = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
               "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf", "/Library/Fonts/DejaVuSans-Bold.ttf")
FONT_LICENCE = {
    "DejaVuSans-Bold": "DejaVu Fonts licence (Bitstream Vera licence + public-domain changes), free to redistribute",
    "Pillow default (Aileron Regular)": "CC0 1.0 (public domain), bundled with Pillow",
}


@lru_cache(maxsize=64)
def meme_font(size: int, prefer_default: bool = False) -> tuple[ImageFont.FreeTypeFont, str]:
    """A bold freely-licensed font at `size` px and its name (a key of FONT_LICENCE)."""
    if not prefer_default:
        for path in DEJAVU_BOLD:
            if Path(path).is_file():
                return ImageFont.truetype(path, size), "DejaVuSans-Bold"
    return ImageFont.load_default(size=size), "Pillow default (Aileron Regular)"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    words, lines = text.split(), []
    for word in words:
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _fit(draw, text: str, width: int, max_lines: int, start: int, prefer_default: bool):
    """Largest font size (down to 10 px) at which `text` wraps into `max_lines` within `width`."""
    size = start
    while True:
        font, _ = meme_font(size, prefer_default)
        lines = _wrap(draw, text, font, width)
        widest = max((draw.textlength(line, font=font) for line in lines), default=0)
        if (len(lines) <= max_lines and widest <= width) or size <= 10:
            return font, lines
        size = max(10, int(size * 0.9))


def _draw_block(draw, lines, font, centre_x: int, y: int, fill, stroke: int, stroke_fill) -> int:
    """Draw centred lines from y downwards; return the y below the block."""
    ascent, descent = font.getmetrics()
    step = ascent + descent + max(2, stroke)
    for line in lines:
        w = draw.textlength(line, font=font)
        draw.text((centre_x - w / 2, y), line, font=font, fill=fill, stroke_width=stroke, stroke_fill=stroke_fill)
        y += step
    return y


def _block_height(font, count: int, stroke: int) -> int:
    ascent, descent = font.getmetrics()
    return count * (ascent + descent + max(2, stroke))


def render_meme(background: Image.Image, top: str = "", bottom: str = "", style: Style = "classic",
                size: int = 512, prefer_default_font: bool = False) -> Image.Image:
    """Draw `top`/`bottom` captions on `background` (resized to `size` px wide) in `style`; RGB."""
    if style not in ("classic", "modern"):
        raise ValueError(f"unknown meme style {style!r} (classic, modern)")
    bg = background.convert("RGB")
    height = max(1, round(bg.height * size / bg.width))
    bg = bg.resize((size, height), Image.LANCZOS)
    margin = max(6, size // 32)
    if style == "classic":
        image = bg.copy()
        draw = ImageDraw.Draw(image)
        start = max(12, size // 9)
        for text, at_top in ((top, True), (bottom, False)):
            if not text.strip():
                continue
            font, lines = _fit(draw, text.upper(), size - 2 * margin, 2, start, prefer_default_font)
            stroke = max(1, font.size // 12)
            block = _block_height(font, len(lines), stroke)
            y = margin if at_top else height - margin - block
            _draw_block(draw, lines, font, size // 2, y, (255, 255, 255), stroke, (0, 0, 0))
        return image
    caption = " ".join(t for t in (top, bottom) if t.strip())
    probe = ImageDraw.Draw(bg)
    font, lines = _fit(probe, caption, size - 2 * margin, 3, max(12, size // 14), prefer_default_font)
    bar = _block_height(font, len(lines), 0) + 2 * margin if lines else 0
    image = Image.new("RGB", (size, height + bar), (255, 255, 255))
    image.paste(bg, (0, bar))
    _draw_block(ImageDraw.Draw(image), lines, font, size // 2, margin, (0, 0, 0), 0, None)
    return image


def degrade(image: Image.Image, side: int = 320, quality: int = 35) -> Image.Image:
    """`image` shrunk to `side` px wide and re-encoded as a low-quality JPEG (what reposts look like)."""
    small = image.convert("RGB")
    small = small.resize((side, max(1, round(small.height * side / small.width))), Image.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def photo_background(seed: int, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A photo-like scene: sky and ground gradients, a horizon, soft coloured shapes and grain."""
    rng = np.random.default_rng(seed)
    w, h = size
    horizon = int(h * rng.uniform(0.45, 0.7))
    sky_top, sky_low = rng.integers(40, 255, 3), rng.integers(120, 255, 3)
    ground_top, ground_low = rng.integers(20, 200, 3), rng.integers(0, 120, 3)
    pixels = np.zeros((h, w, 3), np.float32)
    t = np.linspace(0, 1, horizon)[:, None]
    pixels[:horizon] = (sky_top * (1 - t) + sky_low * t)[:, None, :]
    t = np.linspace(0, 1, h - horizon)[:, None]
    pixels[horizon:] = (ground_top * (1 - t) + ground_low * t)[:, None, :]
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.integers(0, w), rng.integers(h // 4, h)
        r = int(rng.integers(h // 12, h // 3))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r // 2), fill=colour)
        else:
            draw.rectangle((cx - r // 2, cy - r, cx + r // 2, cy + r), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.5, 4.0))))
    grain = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray((np.asarray(image, np.float32) + grain).clip(0, 255).astype(np.uint8))
