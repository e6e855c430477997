"""ResultGrid: a scrolling grid of result tiles (thumbnail, name, score) drawn from cached strips.

Each result is a `TileView` in a fixed grid of views; a view repaints only the lines that
changed (its thumbnail when the image at its place changed, else its name/score lines). Moving
views to follow their images was measured slower: every move is a Textual re-layout of the screen
(24 ms vs 18 ms p50 per keypress in bench/bench_tui.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from ...text import one_line
from .. import kitty
from ..images import ThumbnailCache
from ..threads import call_from_worker

SELECTED_FOCUSED = Style(reverse=True, bold=True)
SELECTED = Style(bold=True, underline=True)
DIM = Style(dim=True)


@dataclass(frozen=True)
class Tile:
    """One result as the grid shows it."""

    row: int
    path: Path
    thumb: Path | str
    """The thumbnail (or original) to draw, or a text-card key (`images.card_key`)."""
    score: float
    url: str | None = None
    """Where the image lives on the web (imported rows without a local image)."""


def shown_names(paths: list[Path]) -> list[str]:
    """File names as tiles show them: where names collide, each with its shortest distinguishing
    parent folders ('twemoji/1f998-kangaroo.webp' beside 'fluent3d/1f998-kangaroo.webp')."""
    names = [path.name for path in paths]
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name, []).append(index)
    for members in groups.values():
        if len(members) < 2:
            continue
        parents = {i: [p for p in paths[i].parent.parts if p != paths[i].anchor][::-1] for i in members}
        for i in members:  # parents nearest first; no distinguishing depth (same path): the nearest folder
            depth = next((d for d in range(1, len(parents[i]) + 1)
                          if all(parents[j][:d] != parents[i][:d] for j in members if j != i)), 1)
            names[i] = "/".join([*parents[i][:depth][::-1], names[i]])
    return names


def format_score(score: float) -> str:
    """A score in at most 10 characters: `+0.734`, `+1.23e+19` for huge ones."""
    return f"{score:+.3f}" if abs(score) < 1000 else f"{score:+.3g}"


class TileView(Widget):
    """One tile: `image_height` lines of thumbnail, then its name and its score."""

    DEFAULT_CSS = """
    TileView { width: auto; height: auto; }
    """

    def __init__(self, cache: ThumbnailCache, width: int, image_height: int):
        super().__init__()
        self.cache, self.tile_width, self.image_height = cache, width, image_height
        self.tile: Tile | None = None
        self.shown_name = ""
        """The name shown under the thumbnail (see `shown_names`)."""
        self._highlight: Style | None = None
        self._name = self._score = Strip.blank(width)
        self._blank = Strip.blank(width)

    def get_content_width(self, container, viewport) -> int:
        return self.tile_width

    def get_content_height(self, container, viewport, width: int) -> int:
        return self.image_height + 2

    def show(self, tile: Tile, highlight: Style | None, name: str | None = None) -> None:
        """Show `tile` named `name` (default: its file name); repaint only the lines that changed."""
        previous, self.tile = self.tile, tile
        name = tile.path.name if name is None else name
        new_image = previous is None or (previous.thumb, previous.path) != (tile.thumb, tile.path)
        if not new_image and (highlight, tile.score, name) == (self._highlight, previous.score, self.shown_name):
            return
        self._highlight, self.shown_name = highlight, name
        self._name, self._score = self._name_strip(), self._score_strip()
        if new_image:
            self.refresh()
        else:  # the same image moved score or selection: only the two text lines
            self.refresh(Region(0, self.image_height, self.tile_width, 2))

    def image_rendered(self) -> None:
        """The thumbnail is now in the cache: repaint the image lines."""
        self.refresh(Region(0, 0, self.tile_width, self.image_height))

    def _name_strip(self) -> Strip:
        width = self.tile_width
        text = one_line(self.shown_name, width)
        return Strip([Segment(text.ljust(width), self._highlight)], width)

    def _score_strip(self) -> Strip:
        style = DIM if self._highlight is None else self._highlight
        return Strip([Segment(format_score(self.tile.score).ljust(self.tile_width)[: self.tile_width], style)], self.tile_width)

    def render_line(self, y: int) -> Strip:
        """Thumbnail line y, or the name / score line below it."""
        if self.tile is None:
            return self._blank
        if y < self.image_height:
            strips = self.cache.get(self.tile.thumb, self.tile_width, self.image_height)
            return strips[y] if strips else self._blank
        return self._name if y == self.image_height else self._score


class ResultGrid(VerticalScroll, can_focus=True):
    """Thumbnails of the current results; arrows move the cursor when focused."""

    DEFAULT_CSS = """
    ResultGrid { height: 1fr; width: 1fr; scrollbar-size-vertical: 0; layout: grid; grid-gutter: 1 1; grid-rows: auto; grid-columns: auto; }
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

    def __init__(self, cache: ThumbnailCache, capacity: int = 24, tile_width: int = 22, image_height: int = 10,
                 **kwargs):
        super().__init__(**kwargs)
        self.cache = cache
        self.tile_width = tile_width
        self.image_height = image_height
        self.tiles: list[Tile] = []
        self.names: list[str] = []
        """Shown names of the tiles, in order (colliding file names carry a parent folder)."""
        self._views = [TileView(cache, tile_width, image_height) for _ in range(capacity)]
        for view in self._views:
            view.display = False

    def compose(self):
        yield from self._views

    # -- public API --------------------------------------------------------------------------------
    @property
    def selected(self) -> Tile | None:
        """The tile under the cursor."""
        return self.tiles[self.cursor] if 0 <= self.cursor < len(self.tiles) else None

    @property
    def tile_height(self) -> int:
        """Rows per tile: image, name line, score line, gap."""
        return self.image_height + 3

    @property
    def columns(self) -> int:
        """Tiles per row at the current width."""
        return max(1, (self.size.width + 1) // (self.tile_width + 1))

    @property
    def visible_count(self) -> int:
        """How many tiles are on screen at the current size (a partly visible row counts; all of
        them before the first layout, so the first frame is complete)."""
        if not self.size.height:
            return len(self._views)
        return self.columns * max(1, -(-self.size.height // self.tile_height))

    def render_thumbnails(self, tiles: list[Tile], stale=lambda: False, app=None) -> bool:
        """Render the tiles' thumbnails into the cache (thread-safe; call from a worker), and in
        kitty mode send the new images to `app`'s terminal before any frame shows their cells.

        Stops early and returns False as soon as `stale()` says the tiles were superseded.
        """
        for tile in tiles:
            if stale():
                return False
            self.cache.render(tile.thumb, self.tile_width, self.image_height, tile.path.name)
        if app is not None:
            kitty.send_uploads(app, self.cache)
        return True

    def set_tiles(self, tiles: list[Tile]) -> None:
        """Show new results: tile i goes to view i, which repaints only the lines that changed."""
        self.tiles = tiles[: len(self._views)]
        self.names = shown_names([tile.path for tile in self.tiles])
        self.cursor = min(self.cursor, max(0, len(self.tiles) - 1))
        self._show_views()
        self.call_after_refresh(self._render_missing_later)  # after the frame: no GIL contention with it

    def _show_views(self) -> None:
        """Push tiles, highlight and visibility into the views; the position goes in the border."""
        title = f"{len(self.tiles)} results" if self.tiles else "no results: press / and type a query"
        position = f"{self.cursor + 1}/{len(self.tiles)}" if self.tiles else ""  # there is no scrollbar
        if (title, position) != (self.border_title, self.border_subtitle):  # a border change repaints the grid
            self.border_title, self.border_subtitle = title, position
        for index, view in enumerate(self._views):
            if index < len(self.tiles):
                if not view.display:
                    view.display = True  # a display change is a re-layout: only when it changes
                highlight = (SELECTED_FOCUSED if self.has_focus else SELECTED) if index == self.cursor else None
                view.show(self.tiles[index], highlight, self.names[index])
            elif view.display:
                view.display = False

    def shown_name(self, tile: Tile) -> str:
        """The name `tile` is shown under (its file name unless another result shares it)."""
        index = next((i for i, t in enumerate(self.tiles) if t == tile), None)
        return tile.path.name if index is None else self.names[index]

    def unrendered(self, tiles: list[Tile]) -> list[Tile]:
        """The tiles whose thumbnail is not in the cache yet."""
        return [t for t in tiles if self.cache.get(t.thumb, self.tile_width, self.image_height) is None]

    def _render_missing_later(self) -> None:
        missing = self.unrendered(self.tiles)
        if missing:
            self._render_missing(missing, self.app)

    @work(thread=True, exclusive=True, group="thumbnails")
    def _render_missing(self, tiles: list[Tile], app) -> None:
        from textual.worker import get_current_worker

        worker = get_current_worker()
        if self.render_thumbnails(tiles, lambda: worker.is_cancelled, app):
            call_from_worker(app, self._images_rendered, {tile.thumb for tile in tiles})

    def _images_rendered(self, thumbs: set[Path]) -> None:
        for view in self._views:  # views off screen are drawn when scrolled to: no repaint now
            if view.tile is not None and view.tile.thumb in thumbs and view.region.overlaps(self.region):
                view.image_rendered()

    # -- cursor ------------------------------------------------------------------------------------
    def watch_cursor(self) -> None:
        self._show_views()
        if 0 <= self.cursor < len(self.tiles):
            self.scroll_to_widget(self._views[self.cursor], animate=False)

    def on_focus(self) -> None:
        self._show_views()

    def on_blur(self) -> None:
        self._show_views()

    def on_resize(self) -> None:
        self.styles.grid_size_columns = self.columns

    # -- actions -----------------------------------------------------------------------------------
    def action_move(self, dx: int, dy: int) -> None:
        """Move the cursor by dx tiles and dy rows."""
        if self.tiles:
            self.cursor = max(0, min(len(self.tiles) - 1, self.cursor + dx + dy * self.columns))

    def action_open_detail(self) -> None:
        """Ask the app for the detail view of the selected tile."""
        if self.selected is not None:
            self.post_message(self.Opened(self.selected))
