"""DetailScreen: one result large, with its path, size, score, top SAE features and the text read in it."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from ...steer.provider import ActiveDirection
from ...text import markup_safe, one_line, path_text, terminal_safe
from .. import kitty
from ..images import CARD_PREFIX, ThumbnailCache
from ..threads import call_from_worker


class LargeImage(Widget):
    """An image rendered to fill the widget (in a worker), from the shared cache."""

    DEFAULT_CSS = "LargeImage { width: 1fr; height: 1fr; }"

    def __init__(self, cache: ThumbnailCache, path, **kwargs):
        super().__init__(**kwargs)
        self.cache, self.path = cache, path
        self._strips: list[Strip] | None = None

    def on_resize(self) -> None:
        self._strips = None
        self._render_image(self.size.width, self.size.height, self.app)

    @work(thread=True, exclusive=True)
    def _render_image(self, width: int, height: int, app) -> None:
        if width > 0 and height > 0:
            self._strips = self.cache.render(self.path, width, height)
            kitty.send_uploads(app, self.cache)
            call_from_worker(app, self.refresh)

    def render_line(self, y: int) -> Strip:
        """The y-th line of the rendered image (blank until ready)."""
        if self._strips and y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)


class DetailScreen(ModalScreen[None]):
    """Large view of one result; esc or q returns to the grid."""

    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > Horizontal { width: 95%; height: 90%; border: round $accent; background: $surface; }
    DetailScreen #detail-info { width: 46; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,enter", "dismiss", "back")]
    """esc, q or enter return to the grid."""

    @classmethod
    def for_result(cls, session, cache: ThumbnailCache, tile, name: str | None = None) -> "DetailScreen":
        """The detail view of a grid tile: size, score, its top SAE features, its text (quoted words lit)."""
        from ...errors import MemetuiError
        from ...ocr.display import highlighted
        from ...steer.query import Query, Term

        features = []
        if session.has_sae:
            try:
                features = session.active_directions(8, mode="sae", query=Query((Term(1.0, "image", tile.row),)))
            except MemetuiError:
                features = []
        item = session.items.get(tile.row)
        info = {"size": f"{item.width}x{item.height} px, {item.size or 0:,} bytes", "score": f"{tile.score:+.4f}",
                "row": str(tile.row), "sha256": item.sha256[:16]}
        if not item.has_image:  # an imported row: what the import knew about it
            info.update({key: value for key, value in (("status", "image not on this machine"), ("url", item.url),
                                                       ("caption", item.caption), ("meta", item.meta)) if value})
        ocr = highlighted(session.items.text(tile.row), [t.value for t in session.query.terms if t.kind == "ocr"])
        return cls(cache, tile.path, info, features, ocr=ocr, name=name, image=tile.thumb)

    def __init__(self, cache: ThumbnailCache, path, info: dict, features: list[ActiveDirection],
                 ocr: Text | None = None, name: str | None = None, image=None) -> None:
        """`ocr`: the text read in the image, already escaped and highlighted (memetui.ocr.display);
        `name`: the name the grid shows it under (a colliding file name carries its parent folder);
        `image`: what to draw (default `path`; a text-card key for rows without a local image)."""
        super().__init__()
        self.cache, self.path, self.info, self.features = cache, path, info, features
        self.image = path if image is None or not str(image).startswith(CARD_PREFIX) else image
        self.shown_name = path.name if name is None else name
        self.ocr = ocr

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(one_line(self.shown_name) + "\n\n", style="bold")
        text.append("path\n", style="bold")
        text.append(path_text(self.path) + "\n\n")
        for key, value in self.info.items():
            text.append(f"{key:<8}", style="bold")
            text.append(f"{terminal_safe(value)}\n")
        text.append("\ntop SAE features\n", style="bold")
        for feature in self.features:
            text.append(f"{feature.id:>5} {feature.value:6.2f}  {terminal_safe(feature.label)}\n")
        if not self.features:
            text.append("(no SAE for this index)\n", style="dim")
        if self.ocr is not None and self.ocr.plain.strip():
            text.append("\ntext in image\n", style="bold")
            text.append_text(self.ocr)
            text.append("\n")
        with Horizontal() as frame:
            frame.border_title = markup_safe(one_line(self.shown_name, 60))  # a border title is read as markup
            yield LargeImage(self.cache, self.image)
            with Vertical(id="detail-info"):
                yield Static(text)

    def action_dismiss(self) -> None:
        """Back to the grid."""
        self.dismiss(None)
