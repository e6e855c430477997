"""Terminal images: kitty Unicode-placeholder strips and uploads, half-block and text strips."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import threading
import unicodedata

import numpy as np
import pytest
from PIL import Image
from rich.cells import cell_len

from memetui.tui import kitty
from memetui.tui.images import HALF_BLOCK, ThumbnailCache, halfblock_strips, text_strips

APC = re.compile(r"\x1b_G([^;\x1b]*);([^\x1b]*)\x1b\\")


def noise_image(path=None, size=(300, 200), seed=0) -> Image.Image:
    """A random RGB image (incompressible enough that its PNG needs several 4096-byte chunks)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if path is not None:
        image.save(path)
    return image


def parse_commands(sequence: str) -> list[tuple[dict[str, str], str]]:
    """Split a sequence of APC graphics commands into (keys, payload); nothing else may be in it."""
    commands = [(dict(item.split("=", 1) for item in keys.split(",")), payload)
                for keys, payload in APC.findall(sequence)]
    assert APC.sub("", sequence) == ""
    return commands


def test_image_id_is_stable_nonzero_24_bit():
    ids = {kitty.image_id_for(f"/images/{n}.png\0{22}x{10}") for n in range(2000)}
    assert kitty.image_id_for("/images/1.png\x0022x10") == kitty.image_id_for("/images/1.png\x0022x10")
    assert all(0 < image_id < 1 << 24 for image_id in ids)
    assert len(ids) > 1990  # a hash, not a counter: near-unique over 2000 keys
    assert kitty.image_id_for("a", 1) != kitty.image_id_for("a", 0)


def test_allocate_image_id_probes_past_a_collision(monkeypatch):
    monkeypatch.setattr(kitty, "_owners", {kitty.image_id_for("mine"): "someone else"})
    image_id = kitty.allocate_image_id("mine")
    assert image_id == kitty.image_id_for("mine", 1)
    assert kitty.allocate_image_id("mine") == image_id  # stable once allocated


def test_diacritics_table_is_kittys():
    assert len(kitty.DIACRITICS) == kitty.MAX_CELLS == 297
    assert len(set(kitty.DIACRITICS)) == 297
    assert kitty.DIACRITICS[0] == "\u0305" and kitty.DIACRITICS[-1] == "\U0001D244"
    for mark in kitty.DIACRITICS:
        assert unicodedata.category(mark) == "Mn" and unicodedata.combining(mark) == 230
        assert cell_len(kitty.PLACEHOLDER + mark + mark) == 1


def test_transmit_sequence_chunks_decode_to_the_png():
    image_id, columns, rows, cell = 0x12AB34, 22, 10, (9, 18)
    sequence = kitty.transmit_sequence(noise_image(), image_id, columns, rows, cell)
    commands = parse_commands(sequence)
    assert len(commands) > 2
    first_keys = commands[0][0]
    assert first_keys | {"m": "1"} == {"a": "T", "U": "1", "f": "100", "t": "d", "i": str(image_id),
                                       "c": str(columns), "r": str(rows), "q": "2", "m": "1"}
    for keys, _ in commands[1:]:
        assert keys["q"] == "2" and set(keys) == {"m", "q"}
    assert [keys["m"] for keys, _ in commands] == ["1"] * (len(commands) - 1) + ["0"]
    payloads = [payload for _, payload in commands]
    assert all(len(payload) == kitty.CHUNK_SIZE for payload in payloads[:-1])
    assert 0 < len(payloads[-1]) <= kitty.CHUNK_SIZE
    png = Image.open(io.BytesIO(base64.b64decode("".join(payloads), validate=True)))
    assert png.format == "PNG" and png.size == (columns * cell[0], rows * cell[1]) and png.mode == "RGBA"


def test_transmit_never_upscales_a_small_thumbnail():
    small = Image.new("RGB", (64, 64), (10, 200, 10))
    payload = "".join(p for _, p in parse_commands(kitty.transmit_sequence(small, 8, 22, 10, (10, 20))))
    png = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert png.size == (70, 64)  # the 220x200 box's aspect at the image's own 64 px height


def test_transmit_keeps_aspect_on_transparent_padding():
    wide = Image.new("RGB", (400, 100), (200, 10, 10))
    payload = "".join(p for _, p in parse_commands(kitty.transmit_sequence(wide, 7, 10, 10, (10, 20))))
    png = Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGBA")
    assert png.size == (100, 200)
    assert png.getpixel((50, 100)) == (200, 10, 10, 255)  # image in the middle
    assert png.getpixel((50, 5))[3] == 0 and png.getpixel((50, 195))[3] == 0  # padding above/below


def test_placeholder_strips_cover_every_cell_and_decode_back():
    image_id, columns, rows = 0xC0FFEE, 17, 6
    strips = kitty.placeholder_strips(image_id, columns, rows)
    assert len(strips) == rows
    for row, strip in enumerate(strips):
        text = "".join(segment.text for segment in strip)
        assert strip.cell_length == columns == cell_len(text)
        assert kitty.decode_placeholder_cells(text) == [(row, column) for column in range(columns)]
        colours = {segment.style.color.get_truecolor() for segment in strip}
        assert colours == {(0xC0, 0xFF, 0xEE)}
        # the compositor crops strips at cell boundaries: each piece still names its own cells
        piece = strip.crop(5, 11)
        assert piece.cell_length == 6
        assert kitty.decode_placeholder_cells("".join(s.text for s in piece)) == [(row, c) for c in range(5, 11)]


def test_placeholder_size_limits():
    with pytest.raises(ValueError):
        kitty.placeholder_strips(1, kitty.MAX_CELLS + 1, 2)
    with pytest.raises(ValueError):
        kitty.transmit_sequence(Image.new("RGB", (4, 4)), 1, 3, 0)


def test_kitty_cache_renders_once_and_queues_one_upload_per_image(tmp_path):
    noise_image(tmp_path / "a.png")
    noise_image(tmp_path / "b.png", seed=1)
    cache = ThumbnailCache("kitty", cell_size=(8, 16))
    strips = cache.render(tmp_path / "a.png", 12, 5)
    assert cache.render(tmp_path / "a.png", 12, 5) is strips
    assert cache.get(tmp_path / "a.png", 12, 5) is strips and cache.renders == 1
    cache.render(tmp_path / "b.png", 12, 5)
    assert cache.pending_uploads() == 2
    uploads = cache.take_uploads()
    assert cache.take_uploads() == [] and cache.pending_uploads() == 0
    assert [u.key for u in uploads] == [f"{tmp_path / 'a.png'}\x0012x5", f"{tmp_path / 'b.png'}\x0012x5"]
    assert len({u.image_id for u in uploads}) == 2
    text = "".join(segment.text for segment in strips[3])
    assert kitty.decode_placeholder_cells(text) == [(3, c) for c in range(12)]
    assert strips[0].cell_length == 12 and len(strips) == 5
    colour = list(strips[0])[0].style.color.get_truecolor()
    assert (colour.red << 16 | colour.green << 8 | colour.blue) == uploads[0].image_id
    keys, _ = parse_commands(uploads[0].data)[0]
    assert (keys["i"], keys["c"], keys["r"]) == (str(uploads[0].image_id), "12", "5")
    cache.render(tmp_path / "a.png", 12, 5)  # a repaint: no new render, no new upload
    assert cache.renders == 2 and cache.pending_uploads() == 0


def test_kitty_cache_unreadable_file_gives_text_and_no_upload(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    cache = ThumbnailCache("kitty", cell_size=(8, 16))
    strips = cache.render(bad, 14, 3)
    assert "(unreadable)" in "".join(s.text for s in strips[1]) and strips[1].cell_length == 14
    assert cache.take_uploads() == []


def test_kitty_cache_eviction_drops_unsent_upload(tmp_path):
    for n in range(3):
        noise_image(tmp_path / f"{n}.png", size=(20, 20), seed=n)
    cache = ThumbnailCache("kitty", capacity=2, cell_size=(4, 8))
    for n in range(3):
        cache.render(tmp_path / f"{n}.png", 4, 2)
    assert [u.key.split("\0")[0] for u in cache.take_uploads()] == [str(tmp_path / "1.png"), str(tmp_path / "2.png")]


def test_halfblock_and_text_modes_unchanged(tmp_path):
    noise_image(tmp_path / "a.png", size=(40, 30))
    cache = ThumbnailCache("halfblock")
    strips = cache.render(tmp_path / "a.png", 10, 4)
    assert len(strips) == 4 and all(s.cell_length == 10 for s in strips)
    assert set("".join(s.text for s in strips)) == {HALF_BLOCK}
    assert cache.take_uploads() == []
    text = ThumbnailCache("text").render(tmp_path / "a.png", 10, 4, label="a.png")
    assert [s.cell_length for s in text] == [10] * 4 and "a.png" in text[2].text
    assert [s.cell_length for s in halfblock_strips(Image.new("RGB", (5, 50)), 6, 3)] == [6] * 3
    assert text_strips("x", 3, 3)[1].text == " x "


class FakeDriver:
    is_headless = False
    is_web = False

    def __init__(self):
        self.written: list[str] = []

    def write(self, data: str) -> None:
        self.written.append(data)


class FakeApp:
    """What send_to_terminal reads from a running Textual App: its driver, thread and loop."""

    def __init__(self, loop=None):
        self._driver = FakeDriver()
        self._thread_id = threading.get_ident()
        self._loop = loop


def test_send_uploads_writes_each_image_once(tmp_path):
    noise_image(tmp_path / "a.png", size=(30, 20))
    app, cache = FakeApp(), ThumbnailCache("kitty", cell_size=(4, 8))
    cache.render(tmp_path / "a.png", 6, 3)
    upload = cache._uploads[(str(tmp_path / "a.png"), 6, 3)]
    assert kitty.send_uploads(app, cache) == 1
    assert app._driver.written == [upload.data]
    cache._uploads[("again", 6, 3)] = upload  # evicted and rendered again: same id, already there
    assert kitty.send_uploads(app, cache) == 0 and len(app._driver.written) == 1


def test_send_uploads_waits_while_headless(tmp_path):
    noise_image(tmp_path / "a.png", size=(30, 20))
    app, cache = FakeApp(), ThumbnailCache("kitty", cell_size=(4, 8))
    app._driver.is_headless = True
    cache.render(tmp_path / "a.png", 6, 3)
    assert kitty.send_uploads(app, cache) == 0 and cache.pending_uploads() == 1
    app._driver = None
    assert not kitty.send_to_terminal(app, "x") and cache.pending_uploads() == 1


def test_send_to_terminal_from_a_worker_thread_runs_on_the_app_loop():
    loop = asyncio.new_event_loop()
    try:
        app = FakeApp(loop)
        worker = threading.Thread(target=kitty.send_to_terminal, args=(app, "\x1b_Ga=d,i=1\x1b\\"))
        worker.start()
        worker.join()
        assert app._driver.written == []  # not written from the worker thread itself
        loop.run_until_complete(asyncio.sleep(0))
        assert app._driver.written == ["\x1b_Ga=d,i=1\x1b\\"]
    finally:
        loop.close()


async def test_headless_textual_app_sends_nothing(tmp_path):
    from textual.app import App

    noise_image(tmp_path / "a.png", size=(30, 20))
    cache = ThumbnailCache("kitty", cell_size=(4, 8))
    cache.render(tmp_path / "a.png", 6, 3)
    app = App()
    async with app.run_test():
        assert not kitty.can_send(app)
        assert kitty.send_uploads(app, cache) == 0
    assert cache.pending_uploads() == 1


def test_ensure_truecolor_environment(monkeypatch):
    from rich.console import Console

    monkeypatch.setenv("TERM", "xterm-kitty")
    monkeypatch.delenv("COLORTERM", raising=False)
    assert Console(file=io.StringIO(), force_terminal=True).color_system != "truecolor"
    kitty.ensure_truecolor_environment()
    assert Console(file=io.StringIO(), force_terminal=True).color_system == "truecolor"


PTY_APP = '''
import sys
from pathlib import Path
from textual.app import App
from textual.strip import Strip
from textual.widget import Widget
from memetui.tui import kitty
from memetui.tui.images import ThumbnailCache

kitty.ensure_truecolor_environment()
cache, path = ThumbnailCache("kitty"), Path(sys.argv[1])

class Thumb(Widget):
    DEFAULT_CSS = "Thumb { width: 12; height: 5; offset: 3 2; }"
    def on_mount(self):
        self.run_worker(self.load, thread=True)
    def load(self):
        cache.render(path, 12, 5)
        kitty.send_uploads(self.app, cache)
        self.app.call_from_thread(self.refresh)
    def render_line(self, y):
        strips = cache.get(path, 12, 5)
        return strips[y] if strips else Strip.blank(12)

class Demo(App):
    def compose(self):
        yield Thumb()
    def on_mount(self):
        self.set_timer(1.5, self.exit)

Demo().run()
'''


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs a pty")
def test_real_textual_app_on_a_pty_uploads_then_draws_placeholders(tmp_path):
    """A non-headless app on a pseudo-terminal: the upload goes out once, before the cells naming it."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import sys
    import termios
    import time

    noise_image(tmp_path / "a.png", size=(60, 50))
    (tmp_path / "app.py").write_text(PTY_APP)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 640, 384))  # 8x16 px cells
    env = {k: v for k, v in os.environ.items() if k != "COLORTERM"} | {"TERM": "xterm-kitty"}
    process = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(tmp_path / "a.png")],
                               stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    output, deadline = b"", time.time() + 60
    while time.time() < deadline:
        if select.select([leader], [], [], 0.2)[0]:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    text = output.decode("utf-8", "replace")
    commands = APC.findall(text)
    assert commands, text[-2000:]
    first = dict(item.split("=", 1) for item in commands[0][0].split(","))
    image_id = int(first["i"])
    assert (first["a"], first["U"], first["c"], first["r"]) == ("T", "1", "12", "5")
    assert sum(1 for keys, _ in commands if "a=T" in keys) == 1
    png = Image.open(io.BytesIO(base64.b64decode("".join(payload for _, payload in commands))))
    # the box's aspect from the pty's cell size (TIOCGWINSZ: 8x16 px cells, 96x80 px), never upscaled
    assert png.size == (60, 50) and png.size[0] * 80 == png.size[1] * 96
    runs = re.findall(r"\x1b\[[0-9;]*38;2;(\d+);(\d+);(\d+)m((?:\U0010EEEE..)+)", text)
    assert text.index("\U0010EEEE") > text.index("\x1b_G")
    rows = {}
    for red, green, blue, cells in runs:
        assert int(red) << 16 | int(green) << 8 | int(blue) == image_id  # rich kept 24-bit colour
        for row, column in kitty.decode_placeholder_cells(cells):
            rows.setdefault(row, set()).add(column)
    assert rows == {row: set(range(12)) for row in range(5)}


@pytest.mark.parametrize("env, expected", [
    ({"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "3"}, "kitty"),
    ({"TERM": "xterm-ghostty", "TERM_PROGRAM": "ghostty"}, "kitty"),
    ({"TERM": "tmux-256color", "KITTY_WINDOW_ID": "3", "TMUX": "/tmp/tmux-0/default,1,0"}, "halfblock"),
    ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, "sixel"),
    ({"TERM": "foot"}, "sixel"),
    ({"TERM": "xterm-256color"}, "halfblock"),
    ({"TERM": "dumb"}, "text"),
])
def test_detect_graphics(monkeypatch, env, expected):
    from memetui.tui.images import detect_graphics

    for name in ("TERM", "TERM_PROGRAM", "KITTY_WINDOW_ID", "TMUX", "ZELLIJ", "STY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert detect_graphics() == expected
    assert detect_graphics("text") == "text" and detect_graphics("kitty") == "kitty"
