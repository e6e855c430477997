"""Benchmark: keypress -> repainted grid of >= 12 thumbnails, memetui vs textual-image, one run.

    python bench/bench_tui.py [--index sample_index] [--presses 40] [--graphics halfblock kitty]

Both apps run headless (App.run_test) at the same terminal size. A key event is posted to the
app's driver exactly as a terminal's input thread would; the clock stops inside `App._display`
at the first frame that shows every thumbnail of the new page, after that frame has been
encoded to the escape sequences a terminal would receive. (Pilot's `press` is not used: it
sleeps in 20 ms slices until the process looks idle, which measures the test harness.)

memetui's app steps the query (`l`), searches in a worker and repaints its grid from strips
rendered once per image and cached. The baseline shows the images memetui showed after each
press in a grid of textual-image widgets of the same protocol (`HalfcellImage` for half-block,
`TGPImage` for kitty graphics with Unicode placeholders), also on an `l` key binding, with no
search at all: once from the very same index thumbnails (its renderer against ours), once from
1024 px JPEG copies (textual-image pointed at a photo-sized meme folder; memetui's cost does not
depend on the originals' size, it draws from the index's thumbnails). Kitty image uploads go to
a byte-counting sink (textual-image writes them to sys.__stdout__ while rendering; memetui
queues them once per image and the headless app never sends them).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "truecolor")  # a modern terminal (headless would pick 16 colours)
import memetui.tui  # noqa: E402,F401  sets memetui's TEXTUAL_FPS before textual loads: both apps run at it

from textual import events  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.containers import Grid  # noqa: E402

SIZE = (160, 50)
TILES = 12


class FrameClock:
    """Times key event -> first encoded frame for which `complete()` holds."""

    def __init__(self, app: App):
        self.app = app
        self.complete = lambda: False
        self.encoded_bytes = 0
        self._painted_at = 0.0
        self._done: asyncio.Event | None = None
        display = app._display

        def timed_display(screen, renderable) -> None:
            display(screen, renderable)
            if renderable is None or self._done is None or self._done.is_set():
                return
            self.encoded_bytes += len(renderable.render_segments(app.console))  # what a terminal receives
            if self.complete():
                self._painted_at = time.perf_counter()  # the frame is out: stop the clock here
                self._done.set()

        app._display = timed_display

    async def press(self, key: str, complete) -> float:
        """Post `key` as terminal input; ms until a frame satisfying `complete` is encoded."""
        self.complete, self._done = complete, asyncio.Event()
        started = time.perf_counter()
        self.app._driver.send_message(events.Key(key, key))
        await asyncio.wait_for(self._done.wait(), timeout=30)
        return (self._painted_at - started) * 1000


async def run_memetui(index: Path, presses: int, graphics: str) -> tuple[list[float], list[list[Path]], int]:
    """ms per keypress until results + every visible thumbnail are painted; pages shown; renders."""
    from memetui.session import Session
    from memetui.tui.app import MemeApp
    from memetui.tui.widgets.result_grid import ResultGrid, TileView

    painted: dict[int, Path] = {}  # id(view) -> thumbnail its last rendered image line showed
    render_line = TileView.render_line

    def tracked_render_line(view: TileView, y: int):
        strip = render_line(view, y)
        if y < view.image_height and view.tile is not None and view.cache.get(
                view.tile.thumb, view.tile_width, view.image_height):
            painted[id(view)] = view.tile.thumb
        return strip

    TileView.render_line = tracked_render_line
    try:
        app = MemeApp(Session.open(index, device="cpu"), graphics=graphics, restore_history=False)
        times, shown = [], []
        async with app.run_test(size=SIZE) as pilot:
            grid = app.query_one(ResultGrid)

            def all_painted() -> bool:
                views = list(grid.query(TileView))[:TILES]
                return len(grid.tiles) >= TILES and all(painted.get(id(v)) == v.tile.thumb for v in views)

            clock = FrameClock(app)
            while not (app.results_shown and all_painted()):
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            for _ in range(presses):
                before = app.results_shown
                times.append(await clock.press("l", lambda: app.results_shown > before and all_painted()))
                shown.append([t.thumb for t in grid.tiles[:TILES]])
            renders = grid.cache.renders
    finally:
        TileView.render_line = render_line
    return times, shown, renders


class TextualImageGrid(App):
    """The baseline: a grid of textual-image widgets of the same tile size; `l` shows the next
    page of images (the same files memetui showed after each of its presses)."""

    CSS = "Grid { grid-size: 6; grid-gutter: 1; } Grid > * { width: 22; height: 10; }"
    BINDINGS = [("l", "next_page", "next")]

    def __init__(self, pages: list[list[Path]], widget_class):
        super().__init__()
        self.pages, self.widget_class = pages, widget_class
        self.page = -1
        self.rendered: set[int] = set()
        """ids of widgets that rendered the current page."""

    def compose(self) -> ComposeResult:
        with Grid():
            for _ in range(TILES):
                yield self.widget_class()

    def on_mount(self) -> None:
        for widget in self.query(self.widget_class):
            widget.render = self._tracked(widget)

    def _tracked(self, widget):
        render = widget.render

        def tracked_render():
            result = render()
            self.rendered.add(id(widget))
            return result

        return tracked_render

    def action_next_page(self) -> None:
        """Show the next page of images."""
        self.page += 1
        self.rendered.clear()
        for widget, path in zip(self.query(self.widget_class), self.pages[self.page]):
            widget.image = str(path)


class ByteSink(io.StringIO):
    """Counts what a terminal would receive instead of printing it."""

    def write(self, text: str) -> int:
        """Discard `text`, return its length."""
        return len(text)


async def run_textual_image(pages: list[list[Path]], graphics: str) -> list[float]:
    """ms per keypress: `l` swaps every widget's image; until a frame shows all of them."""
    from textual_image.widget import HalfcellImage, TGPImage

    app = TextualImageGrid(pages, TGPImage if graphics == "kitty" else HalfcellImage)
    times = []
    stdout, sys.__stdout__ = sys.__stdout__, ByteSink()  # TGPImage writes its uploads there
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.3)
            clock = FrameClock(app)
            for _ in pages:
                times.append(await clock.press("l", lambda: len(app.rendered) >= TILES))
    finally:
        sys.__stdout__ = stdout
    return times


def photo_sized_copies(pages: list[list[Path]], folder: Path, side: int = 1024) -> list[list[Path]]:
    """The same images as `side`-px JPEGs (real meme folders hold photos of this size; memetui
    draws from its index's thumbnails whatever the originals' size, textual-image decodes them)."""
    from PIL import Image

    copies: dict[Path, Path] = {}
    for page in pages:
        for path in page:
            if path not in copies:
                copies[path] = folder / f"{len(copies)}.jpg"
                with Image.open(path) as image:
                    image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(copies[path], quality=90)
    return [[copies[path] for path in page] for page in pages]


def main() -> None:
    """Print p50/p95 of both and the ratio, per graphics protocol."""
    import tempfile

    from memetui.paths import SAMPLE_INDEX

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=SAMPLE_INDEX)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--graphics", nargs="+", choices=("halfblock", "kitty"), default=["halfblock", "kitty"])
    args = parser.parse_args()
    p = lambda xs, q: statistics.quantiles(xs, n=20)[18] if q == 95 else statistics.median(xs)  # noqa: E731
    print(f"keypress -> encoded frame with {TILES} new thumbnails, {args.presses} presses of `l`, "
          f"terminal {SIZE[0]}x{SIZE[1]}, TEXTUAL_FPS {os.environ['TEXTUAL_FPS']}")
    print(f"{'graphics':<10}{'renderer (files)':<58}{'p50 ms':>8}{'p95 ms':>8}{'ours x':>8}")
    for graphics in args.graphics:
        ours, pages, renders = asyncio.run(run_memetui(args.index, args.presses, graphics))
        baseline = "textual-image TGPImage" if graphics == "kitty" else "textual-image HalfcellImage"
        rows = [(f"memetui ({renders} index thumbnails, each rendered once)", ours)]
        rows.append((f"{baseline} (the same thumbnails)", asyncio.run(run_textual_image(pages, graphics))))
        with tempfile.TemporaryDirectory() as folder:
            large = photo_sized_copies(pages, Path(folder))
            rows.append((f"{baseline} (1024 px JPEG originals)", asyncio.run(run_textual_image(large, graphics))))
        for index, (name, times) in enumerate(rows):
            ratio = f"{p(times, 50) / p(ours, 50):.1f}x" if index else ""
            print(f"{graphics if not index else '':<10}{name:<58}{p(times, 50):>8.1f}{p(times, 95):>8.1f}{ratio:>8}")


if __name__ == "__main__":
    main()
