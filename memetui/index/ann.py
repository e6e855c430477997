"""Top-k by dot product over an index: one interface, the backend chosen by size.

- up to EXACT_MAX_ROWS rows: exact (one float32 matrix-vector product);
- up to IVF_MIN_ROWS: hnswlib graph (hnsw.bin) + exact rerank of 2k candidates;
- above: faiss IVF-PQ, 4-bit fast-scan codes (ivfpq.faiss, memetui/index/ivf.py) + exact rerank
  from the fp16 memmap.

The Session, CLI, SAE and steering only see AnnSearcher.search -> Hits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from ..atomic import atomic_path
from ..errors import IndexFormatError, QueryError
from .ivf import IVF_FILE, IvfParams, IvfPqSearcher, build_ivfpq, load_ivfpq, save_ivfpq, threads_available
from .ivf_tuning import load_tuning, tune_and_save
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
IVF_MIN_ROWS = 250_000
"""From this many rows imports and builds write the compressed IVF-PQ index instead of an HNSW
graph: hnswlib at M 16 needs ~2.2 KB per row and its build (ef_construction 400) takes hours
on a few cores at 1M rows; IVF-PQ needs ~m/2 + 8 bytes per row (README "Scale")."""
Backend = Literal["exact", "hnsw", "ivfpq", "milvus"]


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


def choose_backend(count: int) -> Backend:
    """The backend an index of `count` rows is built for."""
    if count <= EXACT_MAX_ROWS:
        return "exact"
    return "hnsw" if count < IVF_MIN_ROWS else "ivfpq"


def pick_backend(store: IndexStore, exact: bool | None = None) -> Backend:
    """The backend a search of `store` uses, from its manifest and the ANN files present (none is loaded)."""
    if not exact and store.manifest.ann.get("kind") == "milvus":
        return "milvus"
    if exact or (exact is None and store.count <= EXACT_MAX_ROWS):
        return "exact"
    has_hnsw, has_ivf = (store.path / HNSW).is_file(), (store.path / IVF_FILE).is_file()
    if has_ivf and (store.count >= IVF_MIN_ROWS or not has_hnsw):
        return "ivfpq"
    return "hnsw" if has_hnsw else "exact"


def describe_ann(store: IndexStore) -> str:
    """One line: the backend searches of `store` use and its shape (file size, lists, code bytes)."""
    backend = pick_backend(store)
    if backend == "exact":
        return f"exact (every row scored: {store.count:,} rows, no ANN file read)"
    if backend == "hnsw":
        size = (store.path / HNSW).stat().st_size
        shape = ", ".join(f"{k}={v}" for k, v in store.manifest.hnsw.items())
        return f"hnsw: {HNSW} {size / 2**20:,.1f} MiB, {shape}, exact rerank of {RERANK_FACTOR}k"
    if backend == "ivfpq":
        import faiss

        try:
            ivf = faiss.extract_index_ivf(load_ivfpq(store.path / IVF_FILE, store.dim, store.count))
        except IndexFormatError as exc:
            return f"ivfpq: {exc}"
        params = ivf_params_of(store, ivf.nlist).for_index(store.count, store.dim, ivf.nlist)
        tuning = load_tuning(store.path, ivf.nlist)
        tuned = f" (tuned on its rows: recall@10 {tuning.recall:.3f})" if tuning else ""
        code = f"{ivf.code_size} B codes" if ivf.code_size else "codes"
        return (f"ivfpq: {IVF_FILE} {(store.path / IVF_FILE).stat().st_size / 2**20:,.1f} MiB, {ivf.nlist} lists,"
                f" {code}; nprobe {params.nprobe}{tuned}, exact rerank of up to {params.rerank} from the fp16"
                f" embeddings")
    return "milvus"


def ivf_params_of(store: IndexStore, nlist: int) -> IvfParams:
    """The params searches of `store`'s IVF-PQ index (of `nlist` lists) use: its tuning's probes, else the default's."""
    tuning = load_tuning(store.path, nlist)
    return tuning.params() if tuning else IvfParams()


def write_ann(store: IndexStore, embeddings: np.ndarray, threads: int | None = None, progress=None,
              backend: Backend | None = None, ivf_params: IvfParams | None = None) -> Backend:
    """Build the ANN file for all rows of `embeddings` into `store`'s folder (atomically); return its backend.

    Indexes of up to IVF_MIN_ROWS rows get an HNSW graph (as `memetui index` writes), larger ones
    IVF-PQ, whose probes are then tuned on its rows (ivf_tuning.py). progress(stage, done, total) as
    in build.py ('train', 'graph').
    """
    count, dim = embeddings.shape
    backend = backend or ("hnsw" if count < IVF_MIN_ROWS else "ivfpq")
    threads = threads or threads_available()
    if backend == "ivfpq":
        index = build_ivfpq(embeddings, ivf_params or IvfParams(), threads=threads, progress=progress)
        save_ivfpq(index, store.path / IVF_FILE)
        tune_and_save(store.path, index, embeddings, ivf_params or IvfParams())
        return backend
    hnsw = store.manifest.hnsw
    graph = new_hnsw(dim, count, int(hnsw.get("M", HNSW_M)), int(hnsw.get("ef_construction", HNSW_EF_CONSTRUCTION)))
    add_to_hnsw(graph, embeddings, 0, threads, (lambda d, t: progress("graph", d, t)) if progress else None)
    with atomic_path(store.path / HNSW) as tmp:
        graph.save_index(str(tmp))
    return "hnsw"


class AnnSearcher:
    """Answer top-k dot-product queries over an IndexStore's live rows, whichever backend holds them."""

    def __init__(self, store: IndexStore, exact: bool | None = None, ef: int | None = None,
                 backend: Backend | None = None, ivf_params: IvfParams | None = None):
        """`backend` forces one ('exact', 'hnsw', 'ivfpq'); `exact=True/False` is the older spelling."""
        self.store = store
        self.ef = int(ef or store.manifest.hnsw.get("ef_search", HNSW_EF_SEARCH))
        live = store.live_mask()
        self._live_rows = np.flatnonzero(live)
        self._all_live = bool(live.all())
        self._live = None if self._all_live else live
        self._backend: Backend = backend or self._pick_backend(exact)
        self._matrix: np.ndarray | None = None
        self._graph = None
        self._ivf = None
        self._remote = None  # vectors served by Milvus (manifest "ann", memetui/index/milvus_ann.py)
        if self._backend == "hnsw":
            try:
                self._graph = load_hnsw(store.path / HNSW, store.dim, store.count, self.ef)
            except IndexFormatError as exc:  # a damaged graph: search exactly until a build repairs it
                log.warning("%s; searching exactly", exc)
                self._backend = "exact"
        elif self._backend == "milvus":
            from .milvus_ann import MilvusSearcher

            self._remote = MilvusSearcher(store, self.ef)
        elif self._backend == "ivfpq":
            import faiss

            index = load_ivfpq(store.path / IVF_FILE, store.dim, store.count)
            params = ivf_params or ivf_params_of(store, faiss.extract_index_ivf(index).nlist)
            self._ivf = IvfPqSearcher(index, store.embeddings, params)

    def _pick_backend(self, exact: bool | None) -> Backend:
        return pick_backend(self.store, exact)

    @property
    def backend(self) -> Backend:
        """Which backend answers queries: 'exact', 'hnsw' or 'ivfpq'."""
        return self._backend

    @property
    def live_count(self) -> int:
        """Rows a search can return."""
        return int(len(self._live_rows))

    @property
    def first_live_row(self) -> int | None:
        """The lowest live row, None when no row is live."""
        return int(self._live_rows[0]) if len(self._live_rows) else None

    @property
    def exact(self) -> bool:
        """True when searches scan every row instead of walking an ANN index."""
        return self._backend == "exact"

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
        if self._backend == "exact":
            return self._search_exact(query, k)
        if self._remote is not None:
            return Hits(*self._remote.search(query, k, self._live))
        if self._ivf is not None:
            return Hits(*self._ivf.search(query, k, self._live))
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
