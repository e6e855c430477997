"""Image decoding: odd modes, animation, orientation, and files that must be refused."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from memetui.errors import ImageLoadError
from memetui.image_files import load_image


def write_png_header_only(path, width, height):
    """A PNG whose header claims width x height (a decompression bomb's signature)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("mode", ["CMYK", "P", "L", "LA", "RGBA", "I;16", "1"])
def test_any_mode_becomes_rgb(tmp_path, mode):
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    image = source.convert("I;16") if mode == "I;16" else source.convert(mode)
    path = tmp_path / ("x.tiff" if mode in ("CMYK", "I;16") else "x.png")
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (30, 20)


def test_alpha_is_composited_on_white(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").getpixel((3, 3)) == (255, 255, 255)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    red, green, blue = load_image(tmp_path / "a.gif").getpixel((8, 8))
    assert red > 200 and blue < 50


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    image.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").size == (20, 40)


def test_max_side_shrinks_large_images(tmp_path):
    Image.new("RGB", (1600, 800), (1, 2, 3)).save(tmp_path / "big.jpg")
    assert max(load_image(tmp_path / "big.jpg", max_side=100).size) <= 200


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("empty.png", lambda p: p.write_bytes(b""), "empty"),
        ("text.jpg", lambda p: p.write_text("hello, not an image"), "not a readable image"),
        ("bomb.png", lambda p: write_png_header_only(p, 20000, 20000), "too large"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(ImageLoadError, match=reason):
        load_image(path)


def test_truncated_jpeg_is_an_error(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ImageLoadError):
        load_image(path)
