"""Fit an IVF-PQ index's probes to its own rows: the fewest lists that reach recall@10 >= 0.99.

The default probes a fixed share of the lists (`IvfParams.nprobe`: 448 of 4,096), which reaches
0.99 on CLIP-like rows but not on every kind of data: on 250k rows of a sparse-dictionary generator,
whose nearest neighbours are barely closer than random rows (cosine 0.57), it read 0.91. After each
build the index is therefore checked on queries drawn from its own rows (half a row plus half
another plus noise, half a row stepped along directions between rows: what the app's queries look
like), against exact search, and the probes are raised along a ladder until the target is met.
The result goes to `ivfpq.json` beside the index; searches without explicit params use it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_json_atomic
from .ivf import IvfParams, IvfPqSearcher

log = logging.getLogger(__name__)

TUNING_FILE = "ivfpq.json"
"""The probes chosen for the index in the same folder (its lists, rows, and the recall measured)."""
STEP = 1.5
"""Each rung of the ladder probes this many times the lists of the one before, up to every list."""


@dataclass(frozen=True)
class Tuning:
    """The probes chosen for one IVF-PQ index and what they measured."""

    nlist: int
    count: int
    nprobe: int
    recall: float
    """Mean recall@10 of the tuning queries at `nprobe` (below `target` when even the last rung missed)."""
    target: float
    tried: dict[int, float]
    """nprobe -> recall@10, every rung measured."""

    def params(self, base: IvfParams = IvfParams()) -> IvfParams:
        """`base` probing `nprobe` of this index's `nlist` lists."""
        return dataclasses.replace(base, nlist=self.nlist, nprobe=self.nprobe)


def tuning_queries(embeddings: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """[count, d] float32 queries over `embeddings`' rows: half mixes with noise, half stepped rows."""
    rng = np.random.default_rng(seed)
    n, d = embeddings.shape
    half = count // 2
    a, b = np.sort(rng.integers(0, n, (2, count)), axis=1)
    rows_a, rows_b = (np.asarray(embeddings[idx], dtype=np.float32) for idx in (a, b))
    mixed = rows_a[:half] + 0.5 * rows_b[:half] + 0.05 * rng.standard_normal((half, d)).astype(np.float32)
    stepped = rows_a[half:].copy()
    for _ in range(2):
        u, v = (np.asarray(embeddings[np.sort(rng.integers(0, n, count - half))], dtype=np.float32) for _ in "uv")
        direction = u - v
        direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-9
        steps = rng.integers(1, 5, count - half) * rng.choice([-1, 1], count - half)
        stepped += (0.25 * steps * np.linalg.norm(stepped, axis=1))[:, None] * direction
    return np.concatenate([mixed, stepped]).astype(np.float32)


def exact_top(embeddings: np.ndarray, queries: np.ndarray, k: int = 10, chunk: int = 65_536) -> np.ndarray:
    """[q, k] exact top-k rows by dot product, reading `embeddings` (a memmap is fine) `chunk` rows at a time."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_r = np.zeros((len(queries), k), np.int64)
    for lo in range(0, len(embeddings), chunk):
        scores = queries @ np.asarray(embeddings[lo:lo + chunk], dtype=np.float32).T
        s = np.concatenate([best_s, scores], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(lo, lo + scores.shape[1]), scores.shape)], axis=1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return best_r


def tune_nprobe(index, embeddings: np.ndarray, base: IvfParams = IvfParams(), target: float = 0.99,
                queries: int = 200, seed: int = 0) -> Tuning:
    """The fewest probes on a ladder (`base`'s share of the lists, x `STEP` a rung, up to every list)
    whose recall@10 reaches `target`; every list when none does."""
    import faiss

    count, dim = embeddings.shape
    nlist = int(faiss.extract_index_ivf(index).nlist)
    shaped = base.for_index(count, dim, nlist)
    qs = tuning_queries(embeddings, min(queries, 2 * count), seed)
    truth = [set(row.tolist()) for row in exact_top(embeddings, qs)]
    tried: dict[int, float] = {}
    nprobe = shaped.nprobe
    while True:
        searcher = IvfPqSearcher(index, embeddings, dataclasses.replace(shaped, nprobe=nprobe))
        found = (searcher.search(q, 10)[0] for q in qs)
        tried[nprobe] = float(np.mean([len(truth[i] & set(rows.tolist())) / 10 for i, rows in enumerate(found)]))
        if tried[nprobe] >= target or nprobe >= nlist:
            break
        nprobe = min(nlist, math.ceil(nprobe * STEP))
    chosen = next((p for p, r in tried.items() if r >= target), max(tried))
    if tried[chosen] < target:
        log.warning("IVF-PQ index reaches recall@10 %.3f at most (%d of %d lists probed)", tried[chosen], chosen, nlist)
    return Tuning(nlist, count, chosen, tried[chosen], target, tried)


def save_tuning(folder: Path, tuning: Tuning) -> None:
    """Write `tuning` to folder/ivfpq.json atomically."""
    write_json_atomic(Path(folder) / TUNING_FILE, dataclasses.asdict(tuning))


def load_tuning(folder: Path, nlist: int) -> Tuning | None:
    """The tuning saved for an index of `nlist` lists in `folder`; None when absent, unreadable or another index's."""
    try:
        raw = json.loads((Path(folder) / TUNING_FILE).read_text())
        tuning = Tuning(int(raw["nlist"]), int(raw["count"]), int(raw["nprobe"]), float(raw["recall"]),
                        float(raw["target"]), {int(k): float(v) for k, v in raw["tried"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return tuning if tuning.nlist == nlist and 1 <= tuning.nprobe <= nlist else None


def tune_and_save(folder: Path, index, embeddings: np.ndarray, base: IvfParams = IvfParams()) -> Tuning:
    """`tune_nprobe` the index over `embeddings` and save the result beside it."""
    tuning = tune_nprobe(index, embeddings, base)
    save_tuning(folder, tuning)
    log.info("IVF-PQ probes %d of %d lists: recall@10 %.4f on its own rows", tuning.nprobe, tuning.nlist, tuning.recall)
    return tuning


def retune(folder: Path, embeddings: np.ndarray) -> Tuning:
    """Tune the index saved in `folder` (after rows were added to it) over `embeddings`, its rows."""
    from .ivf import IVF_FILE, load_ivfpq

    index = load_ivfpq(Path(folder) / IVF_FILE, embeddings.shape[1], len(embeddings))
    return tune_and_save(folder, index, embeddings)
