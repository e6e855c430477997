"""kitty graphics protocol with Unicode placeholders, as plain Textual strips.

An image is uploaded once (PNG, `a=T,U=1`: transmit and create a *virtual placement* of
`columns` x `rows` cells). The screen then shows it wherever cells hold the placeholder
character U+10EEEE with the image id as 24-bit foreground colour and two combining
diacritics naming the cell's row and column of the image. Those cells are ordinary text to
Textual: they scroll, crop and repaint like any strip, and nothing pixel-positioned is ever
written, so the compositor's partial updates cannot leave stale pixels behind.
Spec: https://sw.kovidgoyal.net/kitty/graphics-protocol/#unicode-placeholders

Every cell carries both diacritics (the long form). The short form, where only a row's first
cell has them and the rest inherit from the cell on their left, breaks as soon as the
compositor crops a strip (a widget partly covered, a horizontal scroll) or restyles one cell.

Sending: Textual owns stdout through its driver's writer thread, so uploads go through
`app._driver.write` (what `App.copy_to_clipboard` does for OSC 52) on the app's thread, never
`sys.stdout` (textual-image's TGP renderable writes to `sys.__stdout__` from inside rendering,
racing the writer thread). Not sent when headless or served to a browser.

Limits: ids are 24-bit (the foreground colour); rich must emit truecolor (see
`ensure_truecolor_environment`); not passed through tmux; an image the terminal evicted
(kitty's storage quota, default 320 MB) is not re-sent while the app still thinks it is there.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import weakref
from typing import NamedTuple

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

PLACEHOLDER = "\U0010EEEE"
CHUNK_SIZE = 4096
DEFAULT_CELL_SIZE = (10, 20)

# Row/column diacritics, index = number (kitty's gen/rowcolumn-diacritics.txt, data only).
_DIACRITIC_HEX = """
0305 030D 030E 0310 0312 033D 033E 033F 0346 034A 034B 034C 0350 0351 0352 0357 035B 0363 0364
0365 0366 0367 0368 0369 036A 036B 036C 036D 036E 036F 0483 0484 0485 0486 0487 0592 0593 0594
0595 0597 0598 0599 059C 059D 059E 059F 05A0 05A1 05A8 05A9 05AB 05AC 05AF 05C4 0610 0611 0612
0613 0614 0615 0616 0617 0657 0658 0659 065A 065B 065D 065E 06D6 06D7 06D8 06D9 06DA 06DB 06DC
06DF 06E0 06E1 06E2 06E4 06E7 06E8 06EB 06EC 0730 0732 0733 0735 0736 073A 073D 073F 0740 0741
0743 0745 0747 0749 074A 07EB 07EC 07ED 07EE 07EF 07F0 07F1 07F3 0816 0817 0818 0819 081B 081C
081D 081E 081F 0820 0821 0822 0823 0825 0826 0827 0829 082A 082B 082C 082D 0951 0953 0954 0F82
0F83 0F86 0F87 135D 135E 135F 17DD 193A 1A17 1A75 1A76 1A77 1A78 1A79 1A7A 1A7B 1A7C 1B6B 1B6D
1B6E 1B6F 1B70 1B71 1B72 1B73 1CD0 1CD1 1CD2 1CDA 1CDB 1CE0 1DC0 1DC1 1DC3 1DC4 1DC5 1DC6 1DC7
1DC8 1DC9 1DCB 1DCC 1DD1 1DD2 1DD3 1DD4 1DD5 1DD6 1DD7 1DD8 1DD9 1DDA 1DDB 1DDC 1DDD 1DDE 1DDF
1DE0 1DE1 1DE2 1DE3 1DE4 1DE5 1DE6 1DFE 20D0 20D1 20D4 20D5 20D6 20D7 20DB 20DC 20E1 20E7 20E9
20F0 2CEF 2CF0 2CF1 2DE0 2DE1 2DE2 2DE3 2DE4 2DE5 2DE6 2DE7 2DE8 2DE9 2DEA 2DEB 2DEC 2DED 2DEE
2DEF 2DF0 2DF1 2DF2 2DF3 2DF4 2DF5 2DF6 2DF7 2DF8 2DF9 2DFA 2DFB 2DFC 2DFD 2DFE 2DFF A66F A67C
A67D A6F0 A6F1 A8E0 A8E1 A8E2 A8E3 A8E4 A8E5 A8E6 A8E7 A8E8 A8E9 A8EA A8EB A8EC A8ED A8EE A8EF
A8F0 A8F1 AAB0 AAB2 AAB3 AAB7 AAB8 AABE AABF AAC1 FE20 FE21 FE22 FE23 FE24 FE25 FE26 10A0F 10A38
1D185 1D186 1D187 1D188 1D189 1D1AA 1D1AB 1D1AC 1D1AD 1D242 1D243 1D244
"""
DIACRITICS: tuple[str, ...] = tuple(chr(int(code, 16)) for code in _DIACRITIC_HEX.split())
MAX_CELLS = len(DIACRITICS)
"""Largest number of rows or columns a placement can address (297)."""


class Upload(NamedTuple):
    """One image's transmit sequence, waiting to be written to the terminal."""

    image_id: int
    key: str
    data: str


def image_id_for(key: str, attempt: int = 0) -> int:
    """A stable non-zero 24-bit image id for `key` (`attempt` > 0 gives alternatives on collision)."""
    digest = hashlib.blake2b(f"{attempt}\0{key}".encode(), digest_size=3).digest()
    return int.from_bytes(digest, "big") or 1


_owners: dict[int, str] = {}
_owners_lock = threading.Lock()


def allocate_image_id(key: str) -> int:
    """`image_id_for(key)`, probing further when that id already belongs to another key in this process."""
    with _owners_lock:
        attempt = 0
        while True:
            image_id = image_id_for(key, attempt)
            owner = _owners.setdefault(image_id, key)
            if owner == key:
                return image_id
            attempt += 1


def id_style(image_id: int) -> Style:
    """The foreground colour that names `image_id` to the terminal."""
    return Style(color=Color.from_rgb((image_id >> 16) & 255, (image_id >> 8) & 255, image_id & 255))


def _check_size(columns: int, rows: int) -> None:
    if not (1 <= columns <= MAX_CELLS and 1 <= rows <= MAX_CELLS):
        raise ValueError(f"placement {columns}x{rows} cells is outside 1..{MAX_CELLS}")


def placeholder_strips(image_id: int, columns: int, rows: int) -> list[Strip]:
    """`rows` strips of `columns` placeholder cells, each naming its (row, column) of the image."""
    _check_size(columns, rows)
    style = id_style(image_id)
    return [
        Strip([Segment("".join(PLACEHOLDER + DIACRITICS[row] + DIACRITICS[column] for column in range(columns)), style)],
              columns)
        for row in range(rows)
    ]


def decode_placeholder_cells(text: str) -> list[tuple[int, int]]:
    """(row, column) of every placeholder cell in `text` (the inverse of a placeholder strip's text)."""
    index = {mark: number for number, mark in enumerate(DIACRITICS)}
    cells = []
    for part in text.split(PLACEHOLDER)[1:]:
        cells.append((index[part[0]], index[part[1]]))
    return cells


def fit_image(image, columns: int, rows: int, cell_size: tuple[int, int] = DEFAULT_CELL_SIZE):
    """`image` centred on transparent padding with the placement box's aspect, aspect kept.

    Never upscaled: a 128 px thumbnail is sent at 128 px and the terminal scales it to the cells,
    which looks the same and makes the PNG (encoding time, bytes over SSH) several times smaller.
    """
    from PIL import Image

    full = (columns * cell_size[0], rows * cell_size[1])
    shrink = min(1.0, max(image.width / full[0], image.height / full[1]))
    box = (max(1, round(full[0] * shrink)), max(1, round(full[1] * shrink)))
    image = image.convert("RGBA")
    scale = min(box[0] / image.width, box[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGBA", box, (0, 0, 0, 0))
    canvas.paste(image.resize(size, Image.Resampling.LANCZOS), ((box[0] - size[0]) // 2, (box[1] - size[1]) // 2))
    return canvas


def _command(keys: str, payload: str) -> str:
    return f"\x1b_G{keys};{payload}\x1b\\"


def transmit_sequence(image, image_id: int, columns: int, rows: int,
                      cell_size: tuple[int, int] = DEFAULT_CELL_SIZE) -> str:
    """APC commands that upload `image` as PNG and create its virtual placement (no replies)."""
    _check_size(columns, rows)
    buffer = io.BytesIO()
    fit_image(image, columns, rows, cell_size).save(buffer, format="PNG", optimize=False, compress_level=1)  # 3x faster than 6, 18 % larger
    payload = base64.standard_b64encode(buffer.getvalue()).decode("ascii")
    chunks = [payload[start:start + CHUNK_SIZE] for start in range(0, len(payload), CHUNK_SIZE)]
    first = f"a=T,U=1,f=100,t=d,i={image_id},c={columns},r={rows},q=2"
    commands = []
    for number, chunk in enumerate(chunks):
        more = int(number < len(chunks) - 1)
        commands.append(_command(f"{first},m={more}" if number == 0 else f"m={more},q=2", chunk))
    return "".join(commands)


def terminal_cell_size(default: tuple[int, int] = DEFAULT_CELL_SIZE) -> tuple[int, int]:
    """The terminal's cell size in pixels from TIOCGWINSZ (no terminal query), or `default`."""
    try:
        import fcntl
        import struct
        import sys
        import termios

        stream = sys.__stdout__
        if stream is None or not stream.isatty():
            return default
        rows, columns, width, height = struct.unpack(
            "HHHH", fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8))
        if rows and columns and width and height:
            return max(1, width // columns), max(1, height // rows)
    except (ImportError, OSError, ValueError):
        pass
    return default


def ensure_truecolor_environment() -> None:
    """Make rich (hence Textual) emit 24-bit colours; call before the App is constructed.

    Without COLORTERM, rich picks 256 colours for TERM=xterm-kitty ("standard" for
    xterm-ghostty), which would turn the id colour into a palette index naming another image.
    Every terminal with kitty graphics has truecolor.
    """
    if os.environ.get("COLORTERM", "").lower() not in ("truecolor", "24bit"):
        os.environ["COLORTERM"] = "truecolor"


_sent: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sent_lock = threading.Lock()


def can_send(app) -> bool:
    """Whether `app` is running on a real terminal that raw escape data can be written to."""
    driver = getattr(app, "_driver", None)
    return driver is not None and not driver.is_headless and not driver.is_web


def send_to_terminal(app, data: str) -> bool:
    """Write raw escape `data` through the app's driver, in order with frames; from any thread."""
    if not data or not can_send(app):
        return False

    def write() -> None:
        driver = getattr(app, "_driver", None)
        if driver is not None:
            driver.write(data)

    if threading.get_ident() == getattr(app, "_thread_id", None):
        write()
    else:
        loop = getattr(app, "_loop", None)
        if loop is None or loop.is_closed():
            return False
        loop.call_soon_threadsafe(write)
    return True


def send_uploads(app, cache) -> int:
    """Send `cache`'s pending uploads not yet sent to `app`'s terminal; returns how many were sent.

    Leaves them queued when the app cannot send yet (not started, headless), so nothing is lost.
    """
    if not can_send(app):
        return 0
    with _sent_lock:
        sent = _sent.setdefault(app, set())
        fresh = [upload for upload in cache.take_uploads() if upload.image_id not in sent]
        if not fresh or not send_to_terminal(app, "".join(upload.data for upload in fresh)):
            return 0
        sent.update(upload.image_id for upload in fresh)
    return len(fresh)
