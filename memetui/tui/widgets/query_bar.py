"""QueryBar: shows the current query; `/` turns it into a text input."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Static

from ...text import literal


class QueryBar(Horizontal):
    """The current query in words, and an input for a new text query."""

    DEFAULT_CSS = """
    QueryBar { height: 3; }
    QueryBar > Static { width: 1fr; height: 1fr; padding: 1 1 0 1; }
    QueryBar > Input { width: 1fr; display: none; }
    QueryBar.editing > Input { display: block; }
    QueryBar.editing > Static { display: none; }
    """

    class Submitted(Message):
        """A new text query was typed."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        yield Static(id="query-text")
        yield Input(placeholder="type a query (weights: 2:cat -1:text), enter to search, esc to cancel",
                    id="query-input")

    def show_query(self, description: str) -> None:
        """Display the query's description (escaped)."""
        self.query_one("#query-text", Static).update(Text("query: ", style="bold") + literal(description),
            layout=False)  # fixed size (1fr of a 3-line bar): no screen re-layout per keypress

    def start_editing(self) -> None:
        """Show and focus the input."""
        self.add_class("editing")
        field = self.query_one(Input)
        field.value = ""
        field.focus()

    def stop_editing(self) -> None:
        """Hide the input."""
        self.remove_class("editing")

    @property
    def editing(self) -> bool:
        """True while the input is shown."""
        return self.has_class("editing")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.stop_editing()
        if event.value.strip():
            self.post_message(self.Submitted(event.value.strip()))
