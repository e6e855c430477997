"""Items: what the index knows about its rows, as values for display (item, OCR text, counts)."""

from __future__ import annotations

from ..index.store import Item
from .searcher import Searcher


class Items:
    """Read-only facts about an index's rows."""

    def __init__(self, store, searcher: Searcher):
        self._store = store
        self._searcher = searcher

    @property
    def live_count(self) -> int:
        """Images that searches can return."""
        return self._searcher.live_count

    @property
    def first_row(self) -> int | None:
        """The first searchable row (a start query for an empty session), None when there is none."""
        return self._searcher.first_live_row

    def get(self, row: int) -> Item:
        """The indexed item at `row` (an immutable value)."""
        return self._store.item(row)

    def text(self, row: int) -> str:
        """The text OCR read in `row`'s image, raw ('' when none or not read); escape it to show it."""
        from ..index.ocr_text import ocr_text

        return ocr_text(self._store, [row])[0]
