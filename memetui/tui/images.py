"""Terminal images: pick a protocol before the app starts; render thumbnails once, cache strips.

Half-block rendering draws two pixels per cell (`▀` with foreground = upper pixel, background =
lower pixel) as rich Segments. kitty rendering (memetui.tui.kitty) draws Unicode-placeholder
cells and queues one upload per image. A thumbnail is rendered once per cell size into Strips
and kept in an LRU cache; repainting the grid only reuses those strips, never decodes or
re-encodes.
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

from ..lru import LRUCache

from .kitty import (DEFAULT_CELL_SIZE, MAX_CELLS, Upload, allocate_image_id, placeholder_strips, terminal_cell_size,
                    transmit_sequence)

GraphicsMode = Literal["kitty", "sixel", "halfblock", "text"]
GRAPHICS_MODES: tuple[str, ...] = ("auto", "kitty", "sixel", "halfblock", "text")
HALF_BLOCK = "▀"


def detect_graphics(requested: str | None = None) -> GraphicsMode:
    """The terminal's best image protocol (decided before the app starts), or the requested one.

    kitty: kitty or Ghostty, the terminals that implement Unicode placeholders, and not inside
    tmux/screen/zellij (they need passthrough the app does not do). WezTerm draws `U=1`
    placements at the cursor and shows U+10EEEE as missing glyphs (wezterm issue #986, PR
    #7924 not released), so it counts as a sixel terminal. sixel: $TERM or $TERM_PROGRAM
    names one. Else half-block when colours are available, text otherwise.

    Sixel terminals are drawn with half-blocks. Observed with XTerm(379) -ti vt340 under Xvfb
    and Textual 8.2.8, putting sixel data in cached strips (per text row: blank cells, then
    DECSC, cursor back, a one-row sixel band, DECRC) is not robust:
    - Textual's compositor crops strips where another widget overlaps (an overlay, a toast)
      and on partial updates; a crop through the sixel control segment printed its payload
      as text (`0;1;0q"1;1;200;20#1;2;95;78;15!10~` on screen) and left blank holes after
      the overlay went away, because re-rendered cells without the band erase sixel pixels;
    - sixel paints 6-pixel rows, so a band per 20-pixel cell row spills 4 pixels into the
      next row: visible stripes across the image, and a band on the screen's last row would
      scroll the whole screen.
    textual-image's SixelImage avoids both by being one widget per image that re-encodes the
    visible crop on every render and writes it at absolute coordinates - nothing a strip
    cache can hold.
    """
    if requested and requested != "auto":
        return requested  # type: ignore[return-value]
    env = os.environ
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    multiplexed = bool(env.get("TMUX") or env.get("ZELLIJ") or env.get("STY")) or term.startswith(("screen", "tmux"))
    kitty_like = env.get("KITTY_WINDOW_ID") or "kitty" in term or "ghostty" in term or program == "ghostty"
    if kitty_like and not multiplexed:
        return "kitty"
    if program == "WezTerm" or any(name in term for name in ("mlterm", "yaft", "foot", "contour", "wezterm")):
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


CARD_PREFIX = "\0card\0"
"""Marks a 'file' that is a text card (a row without a local image) in the thumbnail cache's keys."""


def card_key(text: str) -> str:
    """The cache key that draws `text` as a card instead of an image."""
    return CARD_PREFIX + text


def card_strips(text: str, width: int, height: int) -> list[Strip]:
    """`text` (raw; escaped here) wrapped into a dotted frame of width x height cells."""
    import textwrap

    from ..text import one_line

    style = Style(dim=True)
    inner = max(1, width - 2)
    wrapped = textwrap.wrap(one_line(text), inner, break_long_words=True)[: max(0, height - 2)]
    top = max(1, (height - len(wrapped)) // 2)
    lines = []
    for y in range(height):
        if y in (0, height - 1):
            line = "·" * width
        elif top <= y < top + len(wrapped):
            line = " " + wrapped[y - top].center(inner) + " "
        else:
            line = " " * width
        lines.append(Strip([Segment(line[:width].ljust(width), style)], width))
    return lines


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
    """Rendered thumbnails by (file, width, height): LRU, thread-safe, render-once.

    In "kitty" mode the strips are Unicode placeholders and each render queues the image's
    upload; the widget showing them sends the queue with `kitty.send_uploads(app, cache)`
    (or `take_uploads()`) before the frame that shows them.
    """

    def __init__(self, mode: GraphicsMode = "halfblock", capacity: int = 512,
                 cell_size: tuple[int, int] | None = None):
        self.mode = mode
        self.capacity = capacity
        self._uploads: OrderedDict[tuple, Upload] = OrderedDict()
        self._lock = threading.Lock()
        """Guards the upload queue (the strips have their own cache lock)."""
        self._strips: LRUCache[tuple, list[Strip]] = LRUCache(capacity, on_evict=self._drop_upload)
        self.renders = 0
        """How many times an image was decoded and rendered (tests: repaint must not add any)."""
        self.cell_size = cell_size or (terminal_cell_size() if mode == "kitty" else DEFAULT_CELL_SIZE)
        """Terminal cell size in pixels: the resolution kitty uploads are encoded at."""

    def get(self, path: Path, width: int, height: int) -> list[Strip] | None:
        """Cached strips, or None when not rendered yet."""
        return self._strips.get((str(path), width, height))

    def render(self, path: Path, width: int, height: int, label: str = "") -> list[Strip]:
        """Decode `path` and render it at width x height cells (call from a worker thread)."""
        cached = self.get(path, width, height)
        if cached is not None:
            return cached
        key = (str(path), width, height)
        upload = None
        if str(path).startswith(CARD_PREFIX):
            strips = card_strips(str(path)[len(CARD_PREFIX):], width, height)
        elif self.mode == "text":
            strips = text_strips(label or Path(path).name, width, height)
        elif self.mode == "kitty" and width <= MAX_CELLS and height <= MAX_CELLS:
            strips, upload = self._render_kitty(path, width, height)
        else:
            strips = self._render_halfblock(path, width, height)
        with self._lock:
            self.renders += 1
            if upload is not None:
                self._uploads[key] = upload
        self._strips.put(key, strips)
        return strips

    def _drop_upload(self, key: tuple, _strips) -> None:
        """An evicted image no longer needs uploading."""
        with self._lock:
            self._uploads.pop(key, None)

    def _render_halfblock(self, path: Path, width: int, height: int) -> list[Strip]:
        from ..errors import ImageLoadError
        from ..image_files import load_image

        try:
            return halfblock_strips(load_image(path, max_side=max(64, width * 4)), width, height)
        except ImageLoadError:
            return text_strips("(unreadable)", width, height)

    def _render_kitty(self, path: Path, width: int, height: int) -> tuple[list[Strip], Upload | None]:
        from ..errors import ImageLoadError
        from ..image_files import load_image

        box = max(width * self.cell_size[0], height * self.cell_size[1])
        try:
            image = load_image(path, max_side=max(64, box))
        except ImageLoadError:
            return text_strips("(unreadable)", width, height), None
        key = f"{path}\0{width}x{height}"
        image_id = allocate_image_id(key)
        data = transmit_sequence(image, image_id, width, height, self.cell_size)
        return placeholder_strips(image_id, width, height), Upload(image_id, key, data)

    def pending_uploads(self) -> int:
        """How many rendered kitty images still wait to be sent to the terminal."""
        with self._lock:
            return len(self._uploads)

    def take_uploads(self) -> list[Upload]:
        """The queued kitty uploads, oldest first, removed from the queue (write each `.data` once)."""
        with self._lock:
            uploads = list(self._uploads.values())
            self._uploads.clear()
        return uploads
