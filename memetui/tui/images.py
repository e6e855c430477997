"""Terminal images: pick a protocol before the app starts; render thumbnails once, cache strips.

Half-block rendering draws two pixels per cell (`▀` with foreground = upper pixel, background =
lower pixel) as rich Segments. A thumbnail is rendered once per cell size into Strips and kept
in an LRU cache; repainting the grid only reuses those strips, never decodes or re-encodes.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

GraphicsMode = Literal["kitty", "sixel", "halfblock", "text"]
GRAPHICS_MODES: tuple[str, ...] = ("auto", "kitty", "sixel", "halfblock", "text")
HALF_BLOCK = "▀"


def detect_graphics(requested: str | None = None) -> GraphicsMode:
    """The terminal's best image protocol (decided before the app starts), or the requested one.

    kitty: kitty/ghostty/WezTerm by environment; sixel: $TERM names a sixel terminal; else
    half-block when colours are available, text otherwise. The grid draws kitty and sixel
    terminals with half-blocks too (they render them well, and over SSH reliably).
    """
    if requested and requested != "auto":
        return requested  # type: ignore[return-value]
    env = os.environ
    term = env.get("TERM", "")
    if env.get("KITTY_WINDOW_ID") or "kitty" in term or env.get("TERM_PROGRAM") in ("ghostty", "WezTerm"):
        return "kitty"
    if any(name in term for name in ("mlterm", "yaft", "foot", "contour")):
        return "sixel"
    if term == "dumb" or env.get("NO_COLOR"):
        return "text"
    return "halfblock"


def halfblock_strips(image, width: int, height: int, background=(24, 24, 28)) -> list[Strip]:
    """Render a PIL image into `height` strips of `width` cells (aspect kept, centred)."""
    from PIL import Image

    from ..image_files import to_rgb

    image = to_rgb(image, background=background)
    pixels_high = height * 2
    scale = min(width / image.width, pixels_high / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", (width, pixels_high), background)
    canvas.paste(image.resize(size, Image.Resampling.BILINEAR), ((width - size[0]) // 2, (pixels_high - size[1]) // 2))
    data = canvas.tobytes()
    styles: dict[tuple, Style] = {}
    strips = []
    row_bytes = width * 3
    for y in range(height):
        top = data[2 * y * row_bytes : (2 * y + 1) * row_bytes]
        bottom = data[(2 * y + 1) * row_bytes : (2 * y + 2) * row_bytes]
        segments = []
        for x in range(0, row_bytes, 3):
            key = (top[x], top[x + 1], top[x + 2], bottom[x], bottom[x + 1], bottom[x + 2])
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=Color.from_rgb(*key[:3]), bgcolor=Color.from_rgb(*key[3:]))
            segments.append(Segment(HALF_BLOCK, style))
        strips.append(Strip(Segment.simplify(segments), width))
    return strips


def text_strips(label: str, width: int, height: int) -> list[Strip]:
    """A framed placeholder for terminals without colour (or files that cannot be decoded)."""
    style = Style(dim=True)
    middle = height // 2
    lines = []
    for y in range(height):
        text = label[:width].center(width) if y == middle else ("·" * width if y in (0, height - 1) else " " * width)
        lines.append(Strip([Segment(text, style)], width))
    return lines


class ThumbnailCache:
    """Rendered thumbnails by (file, width, height, mode): LRU, thread-safe, render-once."""

    def __init__(self, mode: GraphicsMode = "halfblock", capacity: int = 512):
        self.mode = mode
        self.capacity = capacity
        self._strips: OrderedDict[tuple, list[Strip]] = OrderedDict()
        self._lock = threading.Lock()
        self.renders = 0
        """How many times an image was decoded and rendered (tests: repaint must not add any)."""

    def get(self, path: Path, width: int, height: int) -> list[Strip] | None:
        """Cached strips, or None when not rendered yet."""
        key = (str(path), width, height)
        with self._lock:
            strips = self._strips.get(key)
            if strips is not None:
                self._strips.move_to_end(key)
            return strips

    def render(self, path: Path, width: int, height: int, label: str = "") -> list[Strip]:
        """Decode `path` and render it at width x height cells (call from a worker thread)."""
        from ..errors import ImageLoadError
        from ..image_files import load_image

        cached = self.get(path, width, height)
        if cached is not None:
            return cached
        if self.mode == "text":
            strips = text_strips(label or Path(path).name, width, height)
        else:
            try:
                strips = halfblock_strips(load_image(path, max_side=max(64, width * 4)), width, height)
            except ImageLoadError:
                strips = text_strips("(unreadable)", width, height)
        with self._lock:
            self.renders += 1
            self._strips[(str(path), width, height)] = strips
            while len(self._strips) > self.capacity:
                self._strips.popitem(last=False)
        return strips
