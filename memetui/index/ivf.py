"""Compressed ANN for large indexes: faiss IVF + 4-bit product quantisation, exact rerank from the memmap.

A query walks `nprobe` of `nlist` inverted lists, scores their PQ codes (asymmetric distance; by
default 4-bit codes of 2-d sub-vectors, m/2 bytes per row, scanned with SIMD table lookups:
faiss's fast-scan), keeps the best `rerank` candidates and rescores them exactly against the
fp16 embeddings (memory-mapped, so only the candidates' rows are read), best first, until the
rest cannot reach the k-th score (`exact_rerank`). The index file holds the
coarse centroids, the PQ codebooks and the codes: about m/2 + 8 bytes per row (296 at d = 1152).

Measured at 1M x 1152 (bench/bench_ann_scale.py, README "Scale"): 96-byte 8-bit codes (IVF1024,PQ96)
cannot order rows without a close neighbour, so recall@10 on steered queries stalled at 0.92 for
10 ms; 288-byte 4-bit codes order them well, and finer lists cover the true neighbours with fewer
codes scanned: IVF4096,PQ576x4fs at nprobe 448, rerank 2,000 reaches 0.99 on both query sets at
~4 ms of one core (~5 before the list-at-a-time scan and the settling rerank; IVF1024 at 128 / 2,000:
0.987 at ~4.6 ms then; IVF2048 at 320 / 2,000: 0.991 at ~5.3).
The coarse centroids are stored in fp16 (`IVF4096(SQfp16)`): the coarse search reads 9.4 instead of
18.9 MB a query, 9–13 % off each query (paired), the same lists and recall.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_path
from ..errors import IndexFormatError

IVF_FILE = "ivfpq.faiss"
"""File name of the compressed index inside an index folder."""
ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): stage 'train' (coarse + PQ training) or 'graph' (adding rows)."""


@dataclass(frozen=True)
class IvfParams:
    """Shape of the compressed index and how queries walk it."""

    nlist: int = 4096
    """Inverted lists (coarse k-means centroids) at most; `for_shape` takes the power of two nearest
    4·sqrt(rows) below it (1M rows: 4,096; 250k: 2,048)."""
    m: int = 576
    """PQ sub-quantisers (`bits` each); must divide the dimension (capped at d/2: 2-d sub-vectors)."""
    nprobe: int = 448
    """Lists visited per query at `nlist` lists (fewer lists: the same share of them)."""
    rerank: int = 2000
    """Candidates rescored exactly from the fp16 embeddings."""
    train_rows: int = 65_536
    """Rows sampled (seeded) to train the coarse centroids."""
    pq_train_rows: int = 16_384
    """Of those, rows the PQ codebooks are trained on: PQ training runs one 256-centroid k-means
    per sub-quantiser, ~2.6 s per 20k rows on a busy 2-core CPU, so m x that adds up fast."""
    bits: int = 4
    """Bits per sub-quantiser code: 4 (IndexIVFPQFastScan: m/2 bytes per row, scanned with SIMD
    table lookups) or 8 (IndexIVFPQ, m bytes per row: the layout before fast-scan)."""
    scan: int = 11
    """faiss fast-scan search implementation (`IndexIVFFastScan.implem`): 11 scores one list at a
    time into a reservoir of candidates. faiss's own choice for 32-row blocks and k > 20 is 13, the
    same reservoir over batches of queries (qbs), which one query cannot fill: at 1M x 1152 it took
    ~1.1x as long for the same candidates (bench/bench_scale.py's ANN part, paired, before `settle`)."""
    settle: float = 1.5
    """Rerank candidates best-first by PQ score, `block` at a time, and stop once no later one can
    reach the k-th exact score: its PQ score + settle x the largest |exact - PQ score| seen so far
    is below it. 0: rescore all `rerank` (the layout before; see `exact_rerank`)."""
    block: int = 128
    """Candidates rescored between two checks of that test (at least k)."""

    def for_shape(self, count: int, dim: int) -> "IvfParams":
        """These params fitted to `count` rows of dimension `dim` (fewer lists for small data, m | dim)."""
        nlist = int(max(1, min(self.nlist, count // 39, 2 ** round(math.log2(max(4 * math.sqrt(count), 1))))))
        smallest = 4 if self.bits == 8 else 2  # faiss trains 256-centroid codebooks of 1-d sub-vectors very slowly
        m = max(1, min(self.m, dim // smallest))
        while dim % m or (self.bits == 4 and m % 2 and m > 1):
            m -= 1
        train = min(self.train_rows, count)
        return dataclasses.replace(self, nlist=nlist, m=m, nprobe=self._probes(nlist), train_rows=train,
                                   pq_train_rows=min(self.pq_train_rows, train))

    def for_index(self, count: int, dim: int, nlist: int) -> "IvfParams":
        """`for_shape`, for an index built with `nlist` lists (an older default's): the same share of them."""
        shaped = self.for_shape(count, dim)
        return shaped if nlist == shaped.nlist else dataclasses.replace(shaped, nlist=nlist, nprobe=self._probes(nlist))

    def _probes(self, nlist: int) -> int:
        """Lists to visit among `nlist`: the share `nprobe` is of `self.nlist`."""
        return max(1, min(round(self.nprobe * nlist / self.nlist), nlist))

    @property
    def factory(self) -> str:
        """The faiss index_factory string of this shape."""
        return f"IVF{self.nlist}(SQfp16),PQ{self.m}" + ("x4fs" if self.bits == 4 else "")


def threads_available() -> int:
    """Every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def build_ivfpq(embeddings: np.ndarray, params: IvfParams = IvfParams(), threads: int | None = None,
                progress: ProgressFn | None = None, chunk: int = 32_768):
    """Train and fill an IVF-PQ index (inner product) over `embeddings` ([N, d] fp16 memmap ok)."""
    import faiss

    count, dim = embeddings.shape
    params = params.for_shape(count, dim)
    faiss.omp_set_num_threads(threads or threads_available())
    progress = progress or (lambda stage, done, total: None)
    index = faiss.index_factory(dim, params.factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    if hasattr(ivf, "do_polysemous_training"):
        ivf.do_polysemous_training = False  # simulated annealing of code ids: ~10 s, unused by rerank
    ivf.pq.cp.max_points_per_centroid = max(1, params.pq_train_rows // (1 << params.bits))
    ivf.cp.max_points_per_centroid = max(39, params.train_rows // params.nlist)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(count, params.train_rows, replace=False))
    progress("train", 0, 1)
    index.train(np.ascontiguousarray(embeddings[sample], dtype=np.float32))
    progress("train", 1, 1)
    for lo in range(0, count, chunk):
        hi = min(lo + chunk, count)
        index.add(np.ascontiguousarray(embeddings[lo:hi], dtype=np.float32))
        progress("graph", hi, count)
    ivf.nprobe = params.nprobe
    return index


def save_ivfpq(index, path: Path) -> None:
    """Write the index to `path` atomically (temporary file, fsync, rename)."""
    import faiss

    with atomic_path(Path(path)) as tmp:
        faiss.write_index(index, str(tmp))


def load_ivfpq(path: Path, dim: int, count: int):
    """Open an IVF-PQ index holding (at least) `count` rows of dimension `dim` (IndexFormatError if not).

    Asked to map the file read-only: 8-bit PQ lists then stay in the file (~25 ms to open 1M rows
    instead of 0.3 s, pages shared between processes); faiss 1.15 reads fast-scan's block lists
    whole all the same (~0.2 s CPU and 291 MiB per 1M x 1152 rows).
    """
    import faiss

    try:
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:  # a layout faiss cannot map: read it whole
            index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexFormatError(f"cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
    if index.d != dim or index.ntotal < count:  # more rows: a build that has not published them yet
        raise IndexFormatError(
            f"{path} holds {index.ntotal} rows of dimension {index.d}, expected {count} x {dim}; re-run the import"
        )
    return index


def extend_ivfpq(path: Path, embeddings: np.ndarray, total: int, threads: int | None = None,
                 progress: ProgressFn | None = None, chunk: int = 32_768) -> int | None:
    """Add rows index.ntotal..total-1 of `embeddings` to the index at `path` (rewritten atomically);
    the rows added (0: already whole), or None when it cannot be extended (unreadable, another
    dimension, more rows than `total`)."""
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError:
        return None
    start = int(index.ntotal)
    if index.d != embeddings.shape[1] or start > total or not index.is_trained:
        return None
    if start == total:
        return 0
    faiss.omp_set_num_threads(threads or threads_available())
    for lo in range(start, total, chunk):
        hi = min(lo + chunk, total)
        index.add(np.ascontiguousarray(embeddings[lo:hi], dtype=np.float32))
        if progress:
            progress("graph", hi - start, total - start)
    save_ivfpq(index, path)
    return total - start


class IvfPqSearcher:
    """Top-k by exact dot product among the IVF-PQ index's best `rerank` candidates (`exact_rerank`)."""

    def __init__(self, index, embeddings: np.ndarray, params: IvfParams = IvfParams(), threads: int = 1):
        """`threads`: faiss's OpenMP threads (process-wide). One query at a time gains nothing from a
        second: it only spins, which at 1M rows doubled the process's CPU per query (~11 -> ~22 ms)
        and its wall time on a busy CPU; builds set their own count."""
        import faiss

        self.index = index
        self.embeddings = embeddings
        self._ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        self.params = params.for_index(*embeddings.shape, self._ivf.nlist)
        self._fast_scan = hasattr(self._ivf, "implem")  # 4-bit codes
        faiss.omp_set_num_threads(threads)

    def _configure(self) -> None:
        """Set this searcher's probes and scan loop on the faiss index (another searcher may share it)."""
        self._ivf.nprobe = self.params.nprobe
        if self._fast_scan:
            self._ivf.implem = self.params.scan

    def candidates(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `n` published candidate rows and their approximate (PQ) scores, best first."""
        self._configure()
        approx, found = self.index.search(query.reshape(1, -1), n)
        keep = (found[0] >= 0) & (found[0] < len(self.embeddings))  # later rows: not published yet
        return found[0][keep], approx[0][keep]

    def search(self, query: np.ndarray, k: int, live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows [k] int64, scores [k] float32), best first; `live` masks out tombstoned rows."""
        query = np.ascontiguousarray(query, dtype=np.float32)
        rows, approx = self.candidates(query, max(self.params.rerank, k))
        if live is not None:
            keep = live[rows]
            rows, approx = rows[keep], approx[keep]
        rows, scores = exact_rerank(self.embeddings, rows, approx, query, k, self.params.settle, self.params.block)
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order].astype(np.int64), scores[order]


def exact_rerank(embeddings: np.ndarray, rows: np.ndarray, approx: np.ndarray, query: np.ndarray, k: int,
                 settle: float = 1.5, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(rows, exact scores) of the candidates rescored: `rows` best-first by their approximate scores
    `approx`, rescored `block` (>= k) at a time until the rest cannot reach the k-th exact score.

    The stop test bounds a later candidate's exact score by its PQ score plus `settle` x the largest
    PQ error seen on the rows rescored so far. At 1M x 1152 (600 steered queries, settle 1.5, block
    128) every query kept the top 10 of rescoring all 2,000 candidates, rescoring a median of 128-704
    of them: the top 10 lie among the first ~30 by PQ score in the median query, the first ~1,800 in
    the worst of a hundred. settle 0 rescores all of them, in row order (memmap locality).
    """
    if not settle or len(rows) <= k:
        order = np.argsort(rows)
        return rows[order], exact_scores(embeddings, rows[order], query)
    step = max(block, k)
    exact = np.empty(len(rows), dtype=np.float32)
    done, largest_error = 0, 0.0
    while done < len(rows):
        end = min(done + step, len(rows))
        exact[done:end] = exact_scores(embeddings, rows[done:end], query)
        largest_error = max(largest_error, float(np.max(np.abs(exact[done:end] - approx[done:end]))))
        done = end
        if done < len(rows) and approx[done] + settle * largest_error < np.partition(exact[:done], done - k)[done - k]:
            break
    return rows[:done], exact[:done]


def exact_scores(embeddings: np.ndarray, rows: np.ndarray, query: np.ndarray, chunk: int = 256) -> np.ndarray:
    """float32 dot products of `query` with embeddings[rows], widened and scored `chunk` rows at a time
    (each widened block stays in the CPU cache: 0.94 vs 1.35 ms for 2,000 x 1152 fp16 rows)."""
    out = np.empty(len(rows), dtype=np.float32)
    for lo in range(0, len(rows), chunk):
        out[lo:lo + chunk] = rows_float32(embeddings, rows[lo:lo + chunk]) @ query
    return out


def rows_float32(embeddings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """embeddings[rows] as float32 [len(rows), d]: the exact rerank's input.

    Gathers from the plain array behind a memmap (numpy.memmap's own indexing costs ~3x more)
    and widens fp16 with torch when it is already loaded (the app: ~10x numpy's conversion,
    ~1.5 ms per 1,000 x 1152 rows); the CLI never imports torch for this. Both are exact.
    """
    block = np.take(np.asarray(embeddings), rows, axis=0)  # ~25 % faster than fancy indexing for 2,000 rows
    torch = sys.modules.get("torch")
    if torch is not None and block.dtype == np.float16:
        return torch.from_numpy(block).float().numpy()
    return block.astype(np.float32)
