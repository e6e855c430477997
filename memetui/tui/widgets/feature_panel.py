"""FeaturePanel: the direction being stepped along (pinned), then the query's and the results'
most active directions, with bars, values and labels."""

from __future__ import annotations

from typing import NamedTuple

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from ...session.features import PanelData, PinnedDirection
from ...steer.provider import ActiveDirection
from ...text import one_line

BAR = "█▉▊▋▌▍▎▏"
BAR_WIDTH = 4
PREFIX = 19
"""Cells before a row's label: marker, id, bar, value (the label gets the rest, ≥ 24 at width 46)."""
SECTIONS = (("query", "features of the query"), ("results", "features of the visible results"))


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `fraction` (0..1) of `width` cells, in eighths."""
    eighths = max(0, min(width * 8, round(fraction * width * 8)))
    full, part = divmod(eighths, 8)
    return ("█" * full + (BAR[8 - part] if part else "")).ljust(width)


class Entry(NamedTuple):
    """One row the cursor can stand on."""

    section: str
    """'pinned', 'query' or 'results'."""
    direction: ActiveDirection


class FeaturePanel(Widget, can_focus=True):
    """The pinned direction first, then two sections; the cursor picks the direction steps move along."""

    DEFAULT_CSS = """
    FeaturePanel { width: 50; height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "previous", show=False),
        Binding("down", "move(1)", "next", show=False),
    ]
    """↑/↓ move the cursor (j/k do the same from anywhere: app bindings)."""

    cursor: reactive[int] = reactive(0)
    """Index of the highlighted entry (0 is the pinned direction when there is one)."""

    class Highlighted(Message):
        """The user moved the cursor to another direction."""

        def __init__(self, direction: ActiveDirection) -> None:
            super().__init__()
            self.direction = direction

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.data = PanelData("sae", None, [], [])
        self.entries: list[Entry] = []
        self._lines: list[Strip] = []
        self._lines_key: tuple | None = None
        self._version = 0
        """Bumped on every new data: the drawn lines are rebuilt."""

    # -- public API --------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The mode the listed directions belong to."""
        return self.data.mode

    @property
    def pinned(self) -> PinnedDirection | None:
        """The direction being stepped along, listed first."""
        return self.data.pinned

    @property
    def directions(self) -> list[ActiveDirection]:
        """Every listed direction, in cursor order."""
        return [entry.direction for entry in self.entries]

    @property
    def highlighted(self) -> ActiveDirection | None:
        """The direction under the cursor."""
        return self.entries[self.cursor].direction if 0 <= self.cursor < len(self.entries) else None

    def set_data(self, data: PanelData) -> None:
        """Show new panel data; the cursor goes to the pinned direction (the first row)."""
        self.data, self._version = data, self._version + 1
        self.entries = self._entries()
        self.set_reactive(FeaturePanel.cursor, 0)  # a programmatic move selects nothing
        self.refresh()

    def set_pinned(self, pinned: PinnedDirection) -> None:
        """Pin another direction (the user selected it); the cursor stays on the entry it was on."""
        had_pinned = self.data.pinned is not None
        self.data, self._version = self.data._replace(pinned=pinned), self._version + 1
        self.entries = self._entries()
        self.set_reactive(FeaturePanel.cursor, min(self.cursor + (not had_pinned), len(self.entries) - 1))
        self.refresh()

    def _entries(self) -> list[Entry]:
        data = self.data
        pinned = [] if data.pinned is None else [Entry("pinned", ActiveDirection(*data.pinned[:3]))]
        return pinned + [Entry(name, d) for name, _ in SECTIONS for d in getattr(data, name)]

    # -- drawing -----------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        """The panel's line y (scrolled so that the cursor's entry is visible)."""
        width, height = self.size.width, self.size.height
        key = (width, height, self.cursor, self.has_focus, self._version)
        if self._lines_key != key:
            self._lines, self._lines_key = self._render_lines(width, height), key
        return self._lines[y] if y < len(self._lines) else Strip.blank(width)

    def _render_lines(self, width: int, height: int) -> list[Strip]:
        """All lines as strips (rebuilt only when the data, cursor or focus change)."""
        data = self.data
        lines: list[Text] = [Text(f"{data.mode.upper()} directions", style="bold")]
        cursor_line = 0
        selected = data.pinned.id if data.pinned is not None else None
        index = 0
        if data.pinned is not None:
            style = self._style(index)
            cursor_line = len(lines) if index == self.cursor else cursor_line
            pinned = data.pinned
            line = self._row(ActiveDirection(*pinned[:3]), True, data.query, style)
            line.append(f" w {pinned.weight:+.2f}", style=style or "bold")
            lines.append(line)
            room = max(8, width - 4)
            label = one_line(pinned.label, 2 * room)
            for start in range(0, len(label), room):  # the whole label, on up to two lines
                lines.append(Text("    " + label[start:start + room], style=style or "italic"))
            index += 1
        elif not data.query:
            lines.append(Text("(none for this query)", style="dim"))
        for name, title in SECTIONS:
            rows = getattr(data, name)
            if rows:
                lines.append(Text(title, style="bold dim"))
            for direction in rows:
                cursor_line = len(lines) if index == self.cursor else cursor_line
                line = self._row(direction, direction.id == selected, rows, self._style(index))
                line.append(one_line(direction.label, max(1, width - PREFIX)), style=self._style(index))
                lines.append(line)
                index += 1
        top = max(0, cursor_line - height + 2) if height else 0
        console = self.app.console
        return [Strip(Segment.adjust_line_length(list(line.render(console)), width), width) for line in lines[top:]]

    def _style(self, index: int) -> str:
        if index != self.cursor:
            return ""
        return "reverse" if self.has_focus else "bold"

    @staticmethod
    def _row(direction: ActiveDirection, marked: bool, section: list[ActiveDirection], style: str) -> Text:
        """Marker, id, bar (scaled to the section's peak) and value."""
        peak = max((abs(d.value) for d in section), default=0.0) or abs(direction.value) or 1.0
        line = Text(f"{'▶' if marked else ' '}{direction.id:>5} ", style=style)
        line.append(bar(min(1.0, abs(direction.value) / peak), BAR_WIDTH),
                    style="green" if direction.value >= 0 else "red")
        line.append(f" {direction.value:+6.2f} ", style=style)
        return line

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def watch_cursor(self) -> None:
        self.refresh()

    # -- actions -----------------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        """Move the cursor by `delta` entries and say which direction it is on."""
        if self.entries:
            self.cursor = max(0, min(len(self.entries) - 1, self.cursor + delta))
            self.post_message(self.Highlighted(self.entries[self.cursor].direction))
