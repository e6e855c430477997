"""Top-k by dot product over an index: hnswlib graph + exact rerank, or exact search when small."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import IndexFormatError, QueryError
from .store import HNSW, IndexStore

log = logging.getLogger(__name__)

EXACT_MAX_ROWS = 10_000
"""Up to this many rows exact search (one BLAS matrix-vector product) is as fast as the HNSW
graph walk and always exact: on a quiet 2-core CPU at d=512 exact took 0.14 ms at 5k rows and
0.30 ms at 10k (HNSW 0.27 / 0.58 ms), 2.0 ms at 20k (HNSW 0.76 ms); under CPU contention
multithreaded BLAS stalls to ~8 ms from 10k rows up while HNSW stays < 1 ms
(bench/bench_search.py --crossover)."""
RERANK_FACTOR = 2
"""HNSW returns RERANK_FACTOR·k candidates; they are rescored exactly and cut to k."""
HNSW_M = 16
"""hnswlib M (links per node) of new graphs; recorded in the manifest."""
HNSW_EF_CONSTRUCTION = 400
"""400 rather than hnswlib's usual 200: recall@10 at ef=128 rises from 0.974 to 0.990 on
steered (off-manifold) queries at 100k x 512 (bench/bench_search.py)."""
HNSW_EF_SEARCH = 128
"""Search-time ef: recall@10 >= 0.99 at 100k x 512 (README "Search: exact or HNSW")."""

class Hits(NamedTuple):
    """Search results for one query, best first."""

    rows: np.ndarray
    """[k] int64 embedding rows."""
    scores: np.ndarray
    """[k] float32 dot products q·x."""


def new_hnsw(dim: int, capacity: int, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION):
    """An empty hnswlib graph (space 'ip') with room for `capacity` rows; seeded, so builds repeat."""
    import hnswlib

    graph = hnswlib.Index(space="ip", dim=dim)
    graph.init_index(max_elements=max(capacity, 1), M=m, ef_construction=ef_construction, random_seed=100)
    return graph


def add_to_hnsw(graph, embeddings: np.ndarray, start: int, threads: int, progress=None) -> None:
    """Insert rows `start:` of `embeddings` into `graph` (labels = row numbers), in chunks."""
    graph.set_num_threads(threads)
    count = len(embeddings)
    for lo in range(start, count, 10_000):
        hi = min(lo + 10_000, count)
        graph.add_items(np.asarray(embeddings[lo:hi], dtype=np.float32), np.arange(lo, hi))
        if progress:
            progress(hi - start, count - start)


def load_hnsw(path: Path, dim: int, count: int, ef: int = HNSW_EF_SEARCH):
    """Load hnsw.bin for the `count` published rows of dimension `dim` (space 'ip').

    A graph holding more rows (written by a build that has not published its manifest yet)
    serves the published ones: the later rows are marked deleted in memory.
    """
    import hnswlib

    graph = hnswlib.Index(space="ip", dim=dim)
    try:
        graph.load_index(str(path), max_elements=max(count, 1))
    except (RuntimeError, OSError, ValueError, MemoryError) as exc:
        raise IndexFormatError(f"cannot load {path}: {exc}") from None
    found = graph.get_current_count()
    if found < count:
        raise IndexFormatError(f"{path} holds {found} rows, expected {count}")
    for label in range(count, found):
        try:
            graph.mark_deleted(label)
        except RuntimeError:
            pass  # already deleted, or not a label of this graph
    graph.set_ef(ef)
    return graph


class AnnSearcher:
    """Answer top-k dot-product queries over an IndexStore's live rows."""

    def __init__(self, store: IndexStore, exact: bool | None = None, ef: int | None = None):
        self.store = store
        self.ef = int(ef or store.manifest.hnsw.get("ef_search", HNSW_EF_SEARCH))
        live = store.live_mask()
        self._live_rows = np.flatnonzero(live)
        self._all_live = bool(live.all())
        # Exact search reads a float32 copy (BLAS has no fast float16 path on CPU).
        self._exact = (store.count <= EXACT_MAX_ROWS) if exact is None else exact
        hnsw_file = store.path / HNSW
        if not self._exact and not hnsw_file.is_file():
            self._exact = True
        self._matrix: np.ndarray | None = None
        self._graph = None
        if not self._exact:
            try:
                self._graph = load_hnsw(hnsw_file, store.dim, store.count, self.ef)
            except IndexFormatError as exc:  # a damaged graph: search exactly until a build repairs it
                log.warning("%s; searching exactly", exc)
                self._exact = True

    @property
    def exact(self) -> bool:
        """True when searches scan every row instead of walking the HNSW graph."""
        return self._exact

    @property
    def matrix(self) -> np.ndarray:
        """[N, d] float32 copy of the embeddings (exact search and reranking)."""
        if self._matrix is None:
            self._matrix = np.asarray(self.store.embeddings, dtype=np.float32)
        return self._matrix

    def search(self, query: np.ndarray, k: int = 20) -> Hits:
        """Top-k live rows by dot product with `query` ([d] float32, need not be unit norm)."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.store.dim:
            raise QueryError(f"query has dimension {query.shape[0]}, index has {self.store.dim}")
        if not np.isfinite(query).all() or not query.any():
            raise QueryError("the query vector is zero or not finite: add a term")
        k = min(int(k), len(self._live_rows))
        if k <= 0:
            return Hits(np.zeros(0, np.int64), np.zeros(0, np.float32))
        if self._exact:
            return self._search_exact(query, k)
        rows, _ = self._graph.knn_query(query, k=min(k * RERANK_FACTOR, len(self._live_rows)))
        rows = rows[0].astype(np.int64)
        scores = self._rows_dot(rows, query)
        order = np.argsort(-scores, kind="stable")[:k]
        return Hits(rows[order], scores[order])

    def _rows_dot(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        source = self._matrix if self._matrix is not None else self.store.embeddings
        return (source[rows].astype(np.float32) @ query).astype(np.float32)

    def _search_exact(self, query: np.ndarray, k: int) -> Hits:
        scores = self.matrix @ query
        if not self._all_live:
            scores = scores[self._live_rows]
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        rows = top if self._all_live else self._live_rows[top]
        return Hits(rows.astype(np.int64), scores[top].astype(np.float32))
