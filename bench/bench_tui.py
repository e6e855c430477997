"""Benchmark: keypress -> repainted grid of >= 12 thumbnails, memetui vs textual-image, one run.

    python bench/bench_tui.py [--index sample_index] [--presses 40]

Both run headless (App.run_test) at the same terminal size with the same 12+ tiles per press:
memetui's app steps the query (`l`), searches, and repaints its grid from half-block strips
rendered once and cached; the baseline shows the very same image files after each press in a
grid of textual-image `HalfcellImage` widgets (its half-block renderer), also on a key binding
driven by `pilot.press`. The clock stops when the screen has been repainted with every thumbnail
of the new results present.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from textual.app import App, ComposeResult  # noqa: E402
from textual.containers import Grid  # noqa: E402

SIZE = (160, 50)
TILES = 12


async def run_memetui(index: Path, presses: int) -> tuple[list[float], list[list[Path]]]:
    """p50 inputs: ms per keypress until results + every thumbnail are painted; tiles shown."""
    from memetui.search import Session
    from memetui.tui.app import MemeApp
    from memetui.tui.widgets.result_grid import ResultGrid

    app = MemeApp(Session.open(index, device="cpu"), graphics="halfblock", restore_history=False)
    times, shown = [], []
    async with app.run_test(size=SIZE) as pilot:
        grid = app.query_one(ResultGrid)

        async def painted(previous: int) -> None:
            while True:
                await pilot.pause(0)
                if app.results_shown > previous and all(
                        grid.cache.get(t.thumb, grid.tile_width, grid.image_height) for t in grid.tiles[:TILES]):
                    await pilot.pause(0)  # let the compositor flush the refresh
                    return

        await painted(0)
        for _ in range(presses):
            before = app.results_shown
            started = time.perf_counter()
            await pilot.press("l")
            await painted(before)
            times.append((time.perf_counter() - started) * 1000)
            shown.append([t.thumb for t in grid.tiles[:TILES]])
    return times, shown


class TextualImageGrid(App):
    """The baseline: a grid of textual-image HalfcellImage widgets of the same tile size; `l`
    shows the next page of images (the same files memetui showed after each of its presses)."""

    CSS = "Grid { grid-size: 6; grid-gutter: 1; } HalfcellImage { width: 22; height: 10; }"
    BINDINGS = [("l", "next_page", "next")]

    def __init__(self, pages: list[list[Path]]):
        super().__init__()
        self.pages = pages
        self.page = -1

    def compose(self) -> ComposeResult:
        from textual_image.widget import HalfcellImage

        with Grid():
            for _ in range(TILES):
                yield HalfcellImage()

    def action_next_page(self) -> None:
        """Show the next page of images."""
        from textual_image.widget import HalfcellImage

        self.page += 1
        for widget, path in zip(self.query(HalfcellImage), self.pages[self.page]):
            widget.image = str(path)


async def run_textual_image(pages: list[list[Path]]) -> list[float]:
    """ms per keypress: `l` swaps every widget's image; wait for the repaint."""
    app = TextualImageGrid(pages)
    times = []
    async with app.run_test(size=SIZE) as pilot:
        for _ in pages:
            started = time.perf_counter()
            await pilot.press("l")
            await pilot.pause(0)
            await pilot.pause(0)
            times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    """Print p50/p95 of both and the ratio."""
    from memetui.paths import SAMPLE_INDEX

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=SAMPLE_INDEX)
    parser.add_argument("--presses", type=int, default=40)
    args = parser.parse_args()
    ours, pages = asyncio.run(run_memetui(args.index, args.presses))
    theirs = asyncio.run(run_textual_image(pages))
    p = lambda xs, q: statistics.quantiles(xs, n=20)[18] if q == 95 else statistics.median(xs)  # noqa: E731
    print(f"keypress -> repainted grid of {TILES} thumbnails, {args.presses} presses, terminal {SIZE[0]}x{SIZE[1]}")
    print(f"{'renderer':<34}{'p50 ms':>9}{'p95 ms':>9}")
    print(f"{'memetui (cached half-block strips)':<34}{p(ours, 50):>9.1f}{p(ours, 95):>9.1f}")
    print(f"{'textual-image HalfcellImage':<34}{p(theirs, 50):>9.1f}{p(theirs, 95):>9.1f}")
    print(f"speed-up (p50): {p(theirs, 50) / p(ours, 50):.1f}x")


if __name__ == "__main__":
    main()
