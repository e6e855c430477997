"""StatusBar: index size, device, mode, step size, last search time."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusBar(Static):
    """One line of state; the app calls `show` after every change."""

    DEFAULT_CSS = """
    StatusBar { height: 1; width: 1fr; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def show(self, *, images: int, device: str, mode: str, step: float, search_ms: float, busy: bool = False,
             undo: int = 0) -> None:
        """Redraw with the given values."""
        text = Text()
        text.append(f"{images:,} images", style="bold")
        text.append(f" │ {device} │ mode ")
        text.append(mode, style="bold")
        text.append(f" │ step {step:.3g} │ search {search_ms:.1f} ms │ undo {undo}")
        if busy:
            text.append(" │ working…", style="italic")
        self.update(text, layout=False)  # fixed one-line size: repaint only, no screen re-layout
