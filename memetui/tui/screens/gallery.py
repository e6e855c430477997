"""GalleryScreen: every live SAE feature with its label, activation rate and top exemplars; pick one to step along.

The features come from `Session.features.gallery()` (every row encoded once, in a worker); the
exemplar thumbnails are rendered from the index thumbnails into the app's ThumbnailCache, in a
worker, for the features on screen only.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, Static

from ...errors import MemetuiError
from ...session.features import GalleryFeature
from ...text import one_line
from .. import kitty
from ..images import ThumbnailCache
from ..threads import call_from_worker

THUMB_WIDTH, THUMB_HEIGHT = 12, 6
"""Cells per exemplar thumbnail (half-blocks: 12 x 12 pixels)."""
ROW_HEIGHT = THUMB_HEIGHT + 2
"""Lines per feature: its title line, its thumbnails, a gap."""


def matches(feature: GalleryFeature, words: list[str]) -> bool:
    """Whether every filter word is in the feature's label (case-insensitive) or is its id."""
    label = feature.label.lower()
    return all(word in label or word.lstrip("#") == str(feature.id) for word in words)


class FeatureList(Widget, can_focus=False):
    """Feature rows (title line + a strip of exemplar thumbnails), scrolled to keep the cursor in view."""

    DEFAULT_CSS = "FeatureList { height: 1fr; }"

    cursor: reactive[int] = reactive(0)
    """Index of the highlighted feature among the shown ones."""

    def __init__(self, cache: ThumbnailCache, **kwargs):
        super().__init__(**kwargs)
        self.cache = cache
        self.features: list[GalleryFeature] = []
        self.top = 0
        """Index of the first feature on screen."""

    @property
    def highlighted(self) -> GalleryFeature | None:
        """The feature under the cursor."""
        return self.features[self.cursor] if 0 <= self.cursor < len(self.features) else None

    @property
    def rows_on_screen(self) -> int:
        """How many features fit (a partly visible one counts)."""
        return max(1, -(-self.size.height // ROW_HEIGHT))

    def show(self, features: list[GalleryFeature]) -> None:
        """Show `features` (a new filter); the cursor goes to the first."""
        self.features, self.top = features, 0
        self.set_reactive(FeatureList.cursor, 0)
        self._changed()

    def move(self, delta: int) -> None:
        """Move the cursor by `delta` features, scrolling as needed."""
        if self.features:
            self.cursor = max(0, min(len(self.features) - 1, self.cursor + delta))

    def watch_cursor(self, cursor: int) -> None:
        full = max(1, self.size.height // ROW_HEIGHT)
        if cursor < self.top:
            self.top = cursor
        elif cursor >= self.top + full:
            self.top = cursor - full + 1
        self._changed()

    def on_resize(self) -> None:
        self._changed()

    def _changed(self) -> None:
        self.refresh()
        missing = [e.thumbnail for f in self.features[self.top:self.top + self.rows_on_screen] for e in f.exemplars
                   if self.cache.get(e.thumbnail, THUMB_WIDTH, THUMB_HEIGHT) is None]
        if missing and self.is_mounted:
            self._render_thumbnails(missing, self.app)

    @work(thread=True, exclusive=True, group="gallery-thumbnails")
    def _render_thumbnails(self, thumbs, app) -> None:
        from textual.worker import get_current_worker

        worker = get_current_worker()
        for thumb in thumbs:
            if worker.is_cancelled:
                return
            self.cache.render(thumb, THUMB_WIDTH, THUMB_HEIGHT)
        kitty.send_uploads(app, self.cache)
        call_from_worker(app, self.refresh)

    def render_line(self, y: int) -> Strip:
        """Line y: a feature's title, one of its thumbnail lines, or the gap below them."""
        width = self.size.width
        index, line = self.top + y // ROW_HEIGHT, y % ROW_HEIGHT
        if index >= len(self.features):
            return Strip.blank(width)
        feature = self.features[index]
        selected = index == self.cursor
        if line == 0:
            title = Text(f"{'▶' if selected else ' '}{feature.id:>5}  {feature.rate:6.2%}  ",
                         style="reverse bold" if selected else "bold")
            title.append(one_line(feature.label, max(1, width - 17)), style="reverse" if selected else "")
            return Strip(Segment.adjust_line_length(list(title.render(self.app.console)), width), width)
        if line > THUMB_HEIGHT:
            return Strip.blank(width)
        segments = [Segment("  ")]
        for exemplar in feature.exemplars[: max(0, (width - 2) // (THUMB_WIDTH + 1))]:
            strips = self.cache.get(exemplar.thumbnail, THUMB_WIDTH, THUMB_HEIGHT)
            strip = strips[line - 1] if strips else Strip([Segment("·" * THUMB_WIDTH, Style(dim=True))])
            segments.extend(strip)
            segments.append(Segment(" "))
        return Strip(Segment.adjust_line_length(segments, width), width)


class GalleryScreen(ModalScreen[bool]):
    """Every live SAE feature; type to filter by label, ↑/↓ to move, enter to step along one, esc to close.

    Dismissed with True when a feature was picked (the Session's SAE selection and mode are set).
    """

    DEFAULT_CSS = """
    GalleryScreen { align: center middle; }
    GalleryScreen > Vertical { width: 95%; height: 92%; border: round $accent; background: $surface; padding: 0 1; }
    GalleryScreen #gallery-status { height: 1; color: $text-muted; }
    GalleryScreen Input { margin: 0 0 1 0; }
    """
    BINDINGS = [
        Binding("escape", "close", "close"),
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "move(-5)", "page up", show=False),
        Binding("pagedown", "move(5)", "page down", show=False),
    ]
    """esc closes; ↑/↓ and page up/down move; typing filters; enter picks (Input.Submitted)."""

    def __init__(self, session, cache: ThumbnailCache) -> None:
        super().__init__()
        self.session, self.cache = session, cache
        self.features: list[GalleryFeature] | None = None
        """Every live feature, once the worker has computed them."""

    def compose(self) -> ComposeResult:
        with Vertical() as frame:
            frame.border_title = "SAE features"
            yield Static("encoding every image…", id="gallery-status")
            yield Input(placeholder="filter by label (or #id)", id="gallery-filter")
            yield FeatureList(self.cache, id="gallery-list")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        if not self.session.has_sae:
            self._status("this index has no SAE: train one with `memetui train-sae`")
            return
        self._load(self.app)

    @work(thread=True, exclusive=True, group="gallery")
    def _load(self, app) -> None:
        try:
            features = self.session.features.gallery()
        except MemetuiError as exc:
            call_from_worker(app, self._status, f"cannot read the features: {exc}")
            return
        call_from_worker(app, self._loaded, features)

    def _loaded(self, features: list[GalleryFeature]) -> None:
        if not self.is_attached:
            return  # closed before every row was encoded (the result stays cached in the Session)
        self.features = features
        self._filter(self.query_one(Input).value)

    def _status(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#gallery-status", Static).update(Text(one_line(text)))

    def _filter(self, text: str) -> None:
        if self.features is None:
            return
        words = text.lower().split()
        shown = [f for f in self.features if matches(f, words)]
        self.query_one(FeatureList).show(shown)
        self._status(f"{len(shown)} of {len(self.features)} live features · activation rate over all images · "
                     "enter: step along it · esc: close")

    def on_input_changed(self, message: Input.Changed) -> None:
        self._filter(message.value)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        feature = self.query_one(FeatureList).highlighted
        if feature is None:
            return
        try:
            self.session.set_mode("sae")
            self.session.select_direction(feature.id, "sae")
        except MemetuiError as exc:
            self._status(str(exc))
            return
        self.dismiss(True)

    def action_move(self, delta: int) -> None:
        """Move the cursor by `delta` features."""
        self.query_one(FeatureList).move(delta)

    def action_close(self) -> None:
        """Close without picking."""
        self.dismiss(False)
