"""HelpScreen: every key binding, as currently mapped."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...text import literal


class HelpScreen(ModalScreen[None]):
    """A table of keys and what they do; any of esc, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 72; height: 80%; border: round $accent; background: $surface; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]
    """esc, q or ? close the help."""

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(title="memetui keys", expand=True, box=None)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("action")
        for keys, description in self.rows:
            table.add_row(literal(keys), literal(description))
        with VerticalScroll():
            yield Static(table)
            yield Static("\nRemap keys in keys.json in the config folder (see README).", classes="dim")

    def action_dismiss(self) -> None:
        """Close the help screen."""
        self.dismiss(None)
