"""MemeApp: query bar, result grid, feature panel and status bar over one Session.

Data flows one way: the app calls Session methods (on the UI thread, each ~1 ms) and asks a
worker for results + active directions of a snapshot of the query. Every refresh bumps a
generation counter; a worker whose generation is stale drops its answer, and
`@work(exclusive=True)` cancels it, so a held key never queues stale searches.
"""

from __future__ import annotations

import gc
import time
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer, Static

from ..errors import MemetuiError, SAEError
from ..session import Session
from ..steer.parse import parse_typed
from ..steer.query import Query
from ..text import terminal_safe
from . import sae_loading
from .images import ThumbnailCache, card_key
from .threads import call_from_worker
from .keys import default_bindings, help_rows, load_keymap
from .opener import open_original
from .palette import ActionCommands
from .screens.detail import DetailScreen
from .screens.gallery import GalleryScreen
from .screens.help import HelpScreen
from .widgets.feature_panel import FeaturePanel
from .widgets.query_bar import QueryBar
from .widgets.result_grid import ResultGrid, Tile
from .widgets.status_bar import StatusBar

RESULTS = 24
SHOW_BUSY_AFTER_S = 0.08
MIN_SIZE = (80, 20)
"""Smallest usable terminal (columns, rows): the panel takes 50 columns, a tile row 10 lines."""


class MemeApp(App):
    """Find images by steering a CLIP query along SAE / PCA / random directions."""

    CSS_PATH = "app.tcss"
    TITLE = "memetui"
    BINDINGS = default_bindings()
    COMMANDS = App.COMMANDS | {ActionCommands}

    def __init__(self, session: Session, graphics: str = "halfblock", query_file: Path | None = None,
                 device_name: str | None = "cpu", restore_history: bool = True, notices: list[str] | None = None):
        """`notices`: raw messages to show once up (e.g. why the SAE was not loaded); `device_name` None: found later."""
        super().__init__()
        self.notices = list(notices or [])
        self.session = session
        self.cache = ThumbnailCache(graphics if graphics in ("text", "kitty") else "halfblock")  # sixel: half-block
        self.graphics = graphics
        self.device_name = device_name
        self.query_file = query_file
        self.restore_history = restore_history
        self.generation = 0
        self.results_shown = 0
        """Completed result refreshes (tests and benchmarks wait on this)."""
        self.defer_pca = False
        """True while the background worker fits the PCA of an app that opened in PCA mode (sae_loading)."""
        self.start_query: Query | None = None
        self.last_search_ms = 0.0
        """Milliseconds of the search whose results are on screen (0 when they were cached)."""
        self._busy_timer = None
        self.queued_steps: list[int] = []  # `l`/`h` pressed while the SAE loads (sae_loading.queue_step)

    # -- lifecycle -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # kept as attributes: results may arrive while a modal screen (help, detail) is on top
        self.query_bar, self.grid = QueryBar(), ResultGrid(self.cache, capacity=RESULTS, id="grid")
        self.panel, self.status_bar = FeaturePanel(id="panel"), StatusBar(id="status")
        yield self.query_bar
        with Horizontal(id="main"):
            yield self.grid
            yield self.panel
        yield self.status_bar
        yield Footer()
        yield Static(id="too-small")

    def on_resize(self, event) -> None:
        """Below MIN_SIZE show one line saying so instead of a grid squeezed to nothing."""
        width, height = event.size
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"memetui needs a terminal of at least {MIN_SIZE[0]}x{MIN_SIZE[1]} (this one is {width}x{height})")

    def on_mount(self) -> None:
        if self.cache.mode == "kitty":
            self.add_class("-kitty")  # see app.tcss: no tinted modal backgrounds over placeholder cells
        keymap = load_keymap()
        if keymap:
            self.set_keymap(keymap)
        self._keymap = keymap
        self.panel.focus()
        sae_loading.mark_loading(self)
        try:
            self._initial_query()
        except MemetuiError as exc:
            self.say(str(exc), severity="error")
        self.start_query = self.session.query
        for notice in self.notices:
            self.say(notice, severity="error", timeout=15)
        self.refresh_view()

    def _initial_query(self) -> None:
        session = self.session
        sae_loading.with_sae_if_needed(self, self._restore_query)  # a restored query may steer along SAE features
        if not session.query.terms and session.items.first_row is not None:
            session.add_image(session.items.first_row)
        session.start_here()  # undo stops at the start query

    def _restore_query(self) -> None:
        session = self.session
        if self.query_file is not None:
            session.files.load_query(self.query_file)
        elif self.restore_history:
            try:
                session.files.load_history()
            except SAEError:
                if session.sae_pending is not None:
                    raise
            except MemetuiError:
                pass

    def on_unmount(self) -> None:
        if self._busy_timer is not None:
            self._busy_timer.stop()
        try:
            self.session.files.save_history()
        except (MemetuiError, OSError):
            pass

    # -- the one refresh path ----------------------------------------------------------------------
    def refresh_view(self) -> None:
        """Show the current query's results: at once when prefetched, else from a search worker
        (results, directions and visible thumbnails) in one frame."""
        self.generation += 1
        session = self.session
        generation = self.generation
        if self._show_cached(generation, session.query, session.mode):
            return
        # a fast search repaints query, results and status in one frame; a slow one shows the query first
        if self._busy_timer is not None:
            self._busy_timer.stop()
        self._busy_timer = self.set_timer(SHOW_BUSY_AFTER_S, lambda: self._show_busy(generation))
        self._search(generation, session.query, session.mode, session.selected, self.grid.visible_count)

    def _show_cached(self, generation: int, query: Query, mode: str) -> bool:
        """Show prefetched results at once, on this thread, when they and their visible thumbnails
        are cached (then there is no search to wait for)."""
        results = self.session.cached_results(RESULTS, query)
        if results is None:
            return False
        tiles = _tiles(results)
        if self.grid.unrendered(tiles[: self.grid.visible_count]):
            return False
        try:
            panel = sae_loading.panel(self.session, mode, query, self.session.selected, results[: self.grid.visible_count],
                                      self.defer_pca)
        except MemetuiError:
            return False
        self._apply(generation, tiles, panel, 0.0)  # a cache hit: no search ran
        return True

    def _show_busy(self, generation: int) -> None:
        if generation != self.generation or not self.query_bar.is_mounted:
            return
        self.query_bar.show_query(self.session.query.describe() or "(empty)")
        self._show_status(busy=True)

    @work(thread=True, exclusive=True, group="search")
    def _search(self, generation: int, query: Query, mode: str, selected, visible: int) -> None:
        stale = lambda: generation != self.generation  # noqa: E731  a newer keypress superseded this search
        try:
            page = self.session.results(RESULTS, query=query)
            panel = sae_loading.panel(self.session, mode, query, selected, page.results[:visible], self.defer_pca)
        except MemetuiError as exc:
            call_from_worker(self, partial(self.say, str(exc), severity="error"))
            call_from_worker(self, self._show_status)
            call_from_worker(self, sae_loading.start, self)
            return
        tiles = _tiles(page.results)
        # thumbnails on screen are rendered before the results are shown: one repaint per keypress
        if self.grid.render_thumbnails(tiles[:visible], stale, app=self) and not stale():
            call_from_worker(self, self._apply, generation, tiles, panel, page.search_ms)

    def _apply(self, generation: int, tiles: list[Tile], panel, search_ms: float) -> None:
        if generation != self.generation:
            return  # a newer keypress superseded this search
        self.last_search_ms = search_ms
        if self._busy_timer is not None:
            self._busy_timer.stop()
        self.query_bar.show_query(self.session.query.describe() or "(empty)")
        self.grid.set_tiles(tiles)
        self.panel.set_data(panel)
        self.results_shown += 1
        self._show_status()
        snapshots = [q for q in (self.session.stepped_query(1), self.session.stepped_query(-1)) if q is not None]
        self.call_after_refresh(self._prefetch, generation, snapshots, self.session.mode, self.grid.visible_count)
        if self.results_shown == 1:
            self.call_after_refresh(gc.freeze)  # torch, the index and Textual stay out of gen-2 scans: no 200 ms pauses
            self.call_after_refresh(sae_loading.start, self)  # the SAE (torch) loads once results are on screen

    @work(thread=True, exclusive=True, group="prefetch")
    def _prefetch(self, generation: int, queries: list[Query], mode: str, visible: int) -> None:
        """After a frame: search the given snapshots (a step either way, computed on the UI thread),
        render the thumbnails and read the results' features they would show, so the next `l`/`h`
        finds them cached. Yields to any newer keypress."""
        for query in queries:
            if generation != self.generation:
                return
            try:
                results = self.session.results(RESULTS, query=query).results[:visible]
                self.session.features.of_rows(mode, [r.row for r in results])
            except MemetuiError:
                return
            self.grid.render_thumbnails(_tiles(results), lambda: generation != self.generation, app=self)

    def _show_status(self, busy: bool = False) -> None:
        session = self.session
        self.status_bar.show(images=session.items.live_count, device=session.terms.device_label or self.device_name or "…",
                             mode=session.mode, step=session.step_size, search_ms=self.last_search_ms, busy=busy,
                             undo=session.undo_depth)

    def say(self, message: str, **kwargs) -> None:
        """A notification of raw text (names, errors): escaped, never read as markup."""
        self.notify(terminal_safe(message), markup=False, **kwargs)

    def _guard(self, fn, *args):
        """Run a Session edit; turn engine errors into a notification; refresh on success."""
        try:
            fn(*args)
        except MemetuiError as exc:
            self.say(str(exc), severity="warning")
            return
        self.refresh_view()

    # -- messages ----------------------------------------------------------------------------------
    def on_query_bar_submitted(self, message: QueryBar.Submitted) -> None:
        self.panel.focus()
        self._embed_then_set(message.text)

    @work(thread=True, exclusive=True, group="embed")
    def _embed_then_set(self, text: str) -> None:
        call_from_worker(self, self._show_status, True)
        try:
            query = parse_typed(text)
            self.session.prepare(query)  # the slow part (CLIP load on first use) runs off the UI thread
        except MemetuiError as exc:
            call_from_worker(self, partial(self.say, str(exc), severity="warning"))
            return
        call_from_worker(self, self._guard, self.session.set_query, query)

    def on_feature_panel_highlighted(self, message: FeaturePanel.Highlighted) -> None:
        try:  # selecting is idempotent: the pinned row shows what `l` steps along
            ref = self.session.select_direction(message.direction.id)
        except MemetuiError:
            return
        self.panel.set_pinned(self.session.features.pinned(ref, self.session.query))

    def on_result_grid_opened(self, message: ResultGrid.Opened) -> None:
        self.action_detail()

    # -- actions -----------------------------------------------------------------------------------
    def action_edit_query(self) -> None:
        """`/`: type a text query."""
        self.query_bar.start_editing()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.query_bar.editing:
            self.query_bar.stop_editing()
            self.panel.focus()
            event.stop()

    def action_add_image(self, weight: int) -> None:
        """`i` / `-`: add the selected image as a positive / negative term."""
        tile = self.grid.selected
        if tile is None:
            self.say("no image selected", severity="warning")
            return
        self._guard(self.session.add_image, tile.row, float(weight))

    def action_move_direction(self, delta: int) -> None:
        """`j` / `k`: highlight the next / previous direction."""
        self.panel.action_move(delta)

    def action_step(self, sign: int) -> None:
        """`l` / `h`: step the query forward / back along the highlighted direction."""
        if sae_loading.queue_step(self, sign):
            return
        panel = self.panel
        if panel.highlighted is not None and self.session.selected != (self.session.mode, panel.highlighted.id):
            try:
                self.session.select_direction(panel.highlighted.id)
            except MemetuiError:
                pass
        self._guard(self.session.step, sign)

    def action_cycle_mode(self) -> None:
        """`m`: sae → pca → random."""
        self._guard(self.session.cycle_mode)

    def action_new_random(self) -> None:
        """`n`: a new random direction (switches to random mode)."""
        self._guard(self.session.new_random_direction)

    def action_step_size(self, direction: int) -> None:
        """`[` / `]`: smaller / larger steps."""
        self.session.scale_step(direction > 0)
        self._show_status()

    def action_undo(self) -> None:
        """`u`: undo the last query change."""
        if self.session.undo():
            self.refresh_view()
        else:
            self.say("nothing to undo", timeout=1.5)

    def action_redo(self) -> None:
        """`ctrl+r`: redo."""
        if self.session.redo():
            self.refresh_view()
        else:
            self.say("nothing to redo", timeout=1.5)

    def action_toggle_focus(self) -> None:
        """`tab`: move focus between the feature panel and the grid."""
        bar = self.query_bar
        if bar.editing:
            bar.stop_editing()
        grid, panel = self.grid, self.panel
        (panel if grid.has_focus else grid).focus()

    def action_detail(self) -> None:
        """`enter`: the selected result, large, with its top SAE features."""
        tile = self.grid.selected
        if tile is None:
            return
        self.push_screen(DetailScreen.for_result(self.session, self.cache, tile, self.grid.shown_name(tile)))

    def action_copy_path(self) -> None:
        """`y`: copy the selected image's path (OSC 52, works over SSH)."""
        tile = self.grid.selected
        if tile is not None:
            self.copy_to_clipboard(str(tile.path))
            self.say(f"copied {tile.path.name}", timeout=2)

    def action_open_original(self) -> None:
        """`o`: open the original with the system viewer when there is a display; else show its path."""
        tile = self.grid.selected
        if tile is None:
            return
        self.say(open_original(tile.url or tile.path), timeout=4)

    def action_bookmark(self) -> None:
        """`b`: bookmark the current query (saved across runs)."""
        try:
            name = self.session.files.bookmark()
        except (MemetuiError, OSError) as exc:
            self.say(f"bookmark failed: {exc}", severity="error")
            return
        self.say(f"bookmarked: {name}", timeout=2)

    def action_export(self) -> None:
        """`e`: export the current results + query as JSON into the data folder."""
        from ..paths import user_data_dir

        target = user_data_dir() / "exports" / time.strftime("memetui-%Y%m%d-%H%M%S.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.session.files.export(target)
        except (MemetuiError, OSError) as exc:
            self.say(f"export failed: {exc}", severity="error")
            return
        self.say(f"exported to {target}", timeout=4)

    def action_gallery(self) -> None:
        """`f`: every live SAE feature (labels, rate, exemplars); enter picks the direction to step along."""
        if not sae_loading.waiting(self):
            self.push_screen(GalleryScreen(self.session, self.cache), lambda picked: picked and self.refresh_view())

    def action_help(self) -> None:
        """`?`: the key map."""
        self.push_screen(HelpScreen(help_rows(self._keymap)))


def _tiles(results) -> list[Tile]:
    """Search results as the grid shows them."""
    return [Tile(r.row, r.path, card_key(r.card) if r.card else r.thumbnail, r.score, r.url) for r in results]
