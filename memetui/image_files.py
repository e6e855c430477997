"""Decode user image files robustly: EXIF orientation, first animation frame, alpha, odd modes."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ico", ".ppm", ".pgm", ".tga"}
)
MAX_PIXELS = 64_000_000
"""Refuse images with more pixels than this (decompression bombs, giant scans)."""

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey half-image


def is_image_name(path: Path) -> bool:
    """True if the file name has an image extension we try to index."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def load_image(path: str | Path, max_side: int | None = None, background=(255, 255, 255)) -> Image.Image:
    """Open an image file as an upright RGB image, optionally reduced so max side ≈ `max_side`.

    Handles EXIF orientation, animated GIF/WebP (first frame), alpha (composited on
    `background`), palette, CMYK, 16-bit and greyscale modes. Raises ImageLoadError.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path.name}: empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageLoadError(f"{path.name}: too large ({width}x{height} pixels)")
                if max_side and img.format == "JPEG":
                    img.draft("RGB", (max_side, max_side))  # decode at reduced scale: much faster
                img.seek(0)
                img.load()
                return to_rgb(img, max_side, background)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"{path.name}: too large (decompression bomb guard)") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path.name}: not a readable image") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageLoadError(f"{path.name}: {exc.__class__.__name__}: {exc}") from None


def to_rgb(img: Image.Image, max_side: int | None = None, background=(255, 255, 255)) -> Image.Image:
    """Convert any PIL image to an upright RGB image, compositing alpha onto `background`."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v * (1 / 256)).convert("L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "La"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        base = Image.new("RGB", img.size, background)
        base.paste(img, mask=img.getchannel("A"))
        img = base
    elif img.mode != "RGB":
        img = img.convert("RGB")
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    return img
