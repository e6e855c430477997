"""ResultGrid: a grid of thumbnail tiles (image, name, score) drawn from cached strips."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from ...steer.directions import safe_label
from ..images import ThumbnailCache


@dataclass(frozen=True)
class Tile:
    """One result as the grid shows it."""

    row: int
    path: Path
    thumb: Path
    score: float


class ResultGrid(Widget, can_focus=True):
    """Thumbnails of the current results; arrows move the cursor when focused."""

    DEFAULT_CSS = """
    ResultGrid { height: 1fr; width: 1fr; }
    """
    BINDINGS = [
        Binding("left", "move(-1, 0)", "left", show=False),
        Binding("right", "move(1, 0)", "right", show=False),
        Binding("up", "move(0, -1)", "up", show=False),
        Binding("down", "move(0, 1)", "down", show=False),
        Binding("enter", "open_detail", "detail", show=False),
    ]
    """Arrow keys move the cursor between tiles; enter opens the detail view."""

    cursor: reactive[int] = reactive(0)
    """Index of the selected tile."""

    class Opened(Message):
        """The user asked for the detail view of the selected tile."""

        def __init__(self, tile: Tile) -> None:
            super().__init__()
            self.tile = tile

    def __init__(self, cache: ThumbnailCache, tile_width: int = 22, image_height: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.cache = cache
        self.tile_width = tile_width
        self.image_height = image_height
        self.tiles: list[Tile] = []
        self._blank = Strip([Segment(" " * tile_width)], tile_width)
        self._gap = Segment(" ")

    # -- public API --------------------------------------------------------------------------------
    @property
    def selected(self) -> Tile | None:
        """The tile under the cursor."""
        return self.tiles[self.cursor] if 0 <= self.cursor < len(self.tiles) else None

    @property
    def columns(self) -> int:
        """Tiles per row at the current width."""
        return max(1, (self.size.width + 1) // (self.tile_width + 1))

    def set_tiles(self, tiles: list[Tile]) -> None:
        """Show new results; render missing thumbnails in a worker; keep the cursor in range."""
        self.tiles = tiles
        self.cursor = min(self.cursor, max(0, len(tiles) - 1))
        self.refresh()
        missing = [t for t in tiles if self.cache.get(t.thumb, self.tile_width, self.image_height) is None]
        if missing:
            self._render_thumbnails(missing)

    @work(thread=True, exclusive=True, group="thumbnails")
    def _render_thumbnails(self, tiles: list[Tile]) -> None:
        from textual.worker import get_current_worker

        worker = get_current_worker()
        visible = self.columns * max(1, self.size.height // self.tile_height)
        for batch in (tiles[:visible], tiles[visible:]):  # one repaint for what is on screen, one for the rest
            for tile in batch:
                if worker.is_cancelled:
                    return
                self.cache.render(tile.thumb, self.tile_width, self.image_height, tile.path.name)
            if batch:
                self.app.call_from_thread(self.refresh)

    # -- rendering ---------------------------------------------------------------------------------
    @property
    def tile_height(self) -> int:
        """Rows per tile: image, name line, score line, gap."""
        return self.image_height + 3

    def _first_visible_row(self) -> int:
        visible = max(1, self.size.height // self.tile_height)
        cursor_row = self.cursor // self.columns
        return max(0, cursor_row - visible + 1)

    def render_line(self, y: int) -> Strip:
        """One screen line: the y-th line across a row of tiles."""
        width = self.size.width
        if not self.tiles:
            text = "no results: press / and type a query" if y == 1 else ""
            return Strip([Segment(text.center(width)[:width], Style(dim=True))], width)
        row, line = divmod(y, self.tile_height)
        row += self._first_visible_row()
        columns = self.columns
        segments: list[Segment] = []
        for column in range(columns):
            index = row * columns + column
            if index >= len(self.tiles):
                break
            segments.extend(self._tile_line(self.tiles[index], line, index == self.cursor))
            segments.append(self._gap)
        return Strip(segments).adjust_cell_length(width)

    def _tile_line(self, tile: Tile, line: int, selected: bool) -> list[Segment]:
        width = self.tile_width
        if line < self.image_height:
            strips = self.cache.get(tile.thumb, width, self.image_height)
            return list((strips[line] if strips else self._blank))
        accent = Style(reverse=True, bold=True) if selected and self.has_focus else (
            Style(bold=True, underline=True) if selected else Style())
        if line == self.image_height:
            name = safe_label(tile.path.name)
            text = name if len(name) <= width else name[: width - 1] + "…"
            return [Segment(text.ljust(width), accent)]
        if line == self.image_height + 1:
            return [Segment(f"{tile.score:+.3f}".ljust(width), Style(dim=not selected) + accent)]
        return [Segment(" " * width)]

    def watch_cursor(self) -> None:
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_resize(self) -> None:
        self.refresh()

    # -- actions -----------------------------------------------------------------------------------
    def action_move(self, dx: int, dy: int) -> None:
        """Move the cursor by dx tiles and dy rows."""
        if self.tiles:
            self.cursor = max(0, min(len(self.tiles) - 1, self.cursor + dx + dy * self.columns))

    def action_open_detail(self) -> None:
        """Ask the app for the detail view of the selected tile."""
        if self.selected is not None:
            self.post_message(self.Opened(self.selected))
