"""Searcher: top-k rows of a query vector through the index's ANN, with a result cache per query."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..index.ann import AnnSearcher
from ..index.display import display_files
from ..lru import LRUCache
from ..steer.query import Query
from .hybrid import has_quoted, hybrid_search

RESULT_CACHE = 64


@dataclass(frozen=True)
class SearchResult:
    """One ranked image."""

    rank: int
    row: int
    path: Path
    score: float
    thumbnail: Path
    """The file to draw: the index's thumbnail, else the original image."""
    text_score: float = 0.0
    """How well the image's OCR text matches the query's quoted terms (0: no match or none asked)."""
    card: str | None = None
    """Raw text to show instead of an image when there is nothing to draw (`absent`), else None."""
    url: str | None = None
    """Where the image lives on the web (imported rows), else None."""
    absent: str | None = None
    """Why the original is not here (raw): an imported row's caption and URL, or a file deleted or
    moved since the last build; None when it is here."""


class ResultPage(NamedTuple):
    """The answer to one results() call; its timing belongs to the call that produced it."""

    results: list[SearchResult]
    search_ms: float
    """Milliseconds this call spent (≈ 0 when the page came from the cache)."""
    cached: bool
    """True when no search ran (prefetched or seen before)."""


class Searcher:
    """Ranks an index's live rows by dot product with a query vector."""

    def __init__(self, store, ann: AnnSearcher | None = None):
        self._store = store
        self.ann = ann or AnnSearcher(store)
        self._pages: LRUCache[tuple, list[SearchResult]] = LRUCache(RESULT_CACHE)

    @property
    def live_count(self) -> int:
        """Rows a search can return."""
        return self.ann.live_count

    @property
    def first_live_row(self) -> int | None:
        """The lowest row a search can return (None for an empty index)."""
        return self.ann.first_live_row

    def search(self, vector: np.ndarray, k: int = 20) -> list[SearchResult]:
        """Top-k images by dot product with `vector` (no caching)."""
        hits = self.ann.search(vector, k)
        return self._results(hits.rows, hits.scores, np.zeros(len(hits.rows)))

    def search_query(self, query: Query, vector: np.ndarray, k: int = 20) -> list[SearchResult]:
        """Top-k for `query` whose vector is `vector`: by dot product, fused with OCR text for quoted terms."""
        if not has_quoted(query):
            return self.search(vector, k)
        hits = hybrid_search(self._store, self.ann, query, vector, k)
        return self._results(hits.rows, hits.clip, hits.text)

    def _results(self, rows, scores, text_scores) -> list[SearchResult]:
        """Ranked results with the files to draw, and a text card where there is no image."""
        results = []
        for rank, (row, shown, score, text) in enumerate(
                zip(rows, display_files(self._store, rows), scores, text_scores), 1):
            absent = None
            if shown.status == "remote":
                absent = "not on this machine: " + (" · ".join(p for p in (shown.caption, shown.url) if p) or "no URL")
            elif not shown.path.is_file():
                absent = "missing: deleted or moved since the last build"
            card = absent if absent and shown.thumb == shown.path else None  # nothing to draw: the card says why
            results.append(SearchResult(rank, int(row), shown.path, float(score), shown.thumb, float(text), card,
                                        shown.url, absent))
        return results

    def page(self, query: Query, k: int, vector: Callable[[Query], np.ndarray]) -> ResultPage:
        """Top-k for `query` ([] when empty), from the cache or searched with `vector(query)`."""
        started = time.perf_counter()
        if not query.terms:
            return ResultPage([], 0.0, True)
        key = (query, int(k))
        found = self._pages.get(key)
        if found is not None:
            return ResultPage(found, (time.perf_counter() - started) * 1000, True)
        found = self._pages.put(key, self.search_query(query, vector(query), k))
        return ResultPage(found, (time.perf_counter() - started) * 1000, False)

    def cached(self, query: Query, k: int) -> list[SearchResult] | None:
        """The results `page(query, k)` would return when they are cached, else None."""
        return [] if not query.terms else self._pages.get((query, int(k)))
