"""FeaturePanel: the directions most active for the current query, with bars and labels."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from ...steer.provider import ActiveDirection
from ...text import one_line

BAR = "█▉▊▋▌▍▎▏"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `fraction` (0..1) of `width` cells, in eighths."""
    eighths = max(0, min(width * 8, round(fraction * width * 8)))
    full, part = divmod(eighths, 8)
    return ("█" * full + (BAR[8 - part] if part else "")).ljust(width)


class FeaturePanel(Widget, can_focus=True):
    """A list of active directions; the cursor marks the direction that steps move along."""

    DEFAULT_CSS = """
    FeaturePanel { width: 44; height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "previous", show=False),
        Binding("down", "move(1)", "next", show=False),
    ]
    """↑/↓ move the cursor (j/k do the same from anywhere: app bindings)."""

    cursor: reactive[int] = reactive(0)
    """Index of the highlighted direction."""

    class Highlighted(Message):
        """The cursor moved to another direction."""

        def __init__(self, direction: ActiveDirection) -> None:
            super().__init__()
            self.direction = direction

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.directions: list[ActiveDirection] = []
        self.mode = "sae"
        self.selected_id: int | None = None
        self._lines: list[Strip] = []
        self._lines_key: tuple | None = None

    # -- public API --------------------------------------------------------------------------------
    @property
    def highlighted(self) -> ActiveDirection | None:
        """The direction under the cursor."""
        return self.directions[self.cursor] if 0 <= self.cursor < len(self.directions) else None

    def set_directions(self, mode: str, directions: list[ActiveDirection], selected_id: int | None) -> None:
        """Show a new list; keep the cursor on `selected_id` when it is still listed."""
        self.mode, self.directions, self.selected_id = mode, directions, selected_id
        ids = [d.id for d in directions]
        if selected_id in ids:
            self.cursor = ids.index(selected_id)
        else:
            self.cursor = min(self.cursor, max(0, len(directions) - 1))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """Title line, then one line per direction: marker, id, bar, value, label."""
        width = self.size.width
        key = (width, self.mode, self.cursor, self.has_focus, self.selected_id, id(self.directions))
        if self._lines_key != key:
            self._lines, self._lines_key = self._render_lines(width), key
        return self._lines[y] if y < len(self._lines) else Strip.blank(width)

    def _render_lines(self, width: int) -> list[Strip]:
        """All lines as strips (rebuilt only when the directions, cursor or focus change)."""
        lines = [Text(f"{self.mode.upper()} directions", style="bold")]
        if not self.directions:
            lines.append(Text("(none for this query)", style="dim"))
        peak = max((abs(d.value) for d in self.directions), default=0.0) or 1.0
        bar_width = 8
        room = max(1, width - bar_width - 16)
        for index, direction in enumerate(self.directions):
            marker = "▶" if direction.id == self.selected_id else " "
            line_style = "reverse" if index == self.cursor and self.has_focus else ("bold" if index == self.cursor else "")
            label = one_line(direction.label, room)
            line = Text(f"{marker}{direction.id:>5} ", style=line_style)
            line.append(bar(abs(direction.value) / peak, bar_width), style="green" if direction.value >= 0 else "red")
            line.append(f" {direction.value:+6.2f} ", style=line_style)
            line.append(label, style=line_style)
            lines.append(line)
        console = self.app.console
        return [Strip(Segment.adjust_line_length(list(line.render(console)), width), width) for line in lines]

    def watch_cursor(self) -> None:
        if self.highlighted is not None:
            self.post_message(self.Highlighted(self.highlighted))
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- actions -----------------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        """Move the cursor by `delta` directions."""
        if self.directions:
            self.cursor = max(0, min(len(self.directions) - 1, self.cursor + delta))
