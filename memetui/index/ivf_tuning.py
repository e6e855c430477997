"""Fit an IVF-PQ index's search to its own rows: the fewest probes and candidates reaching recall@10 0.99.

The default probes a fixed share of the lists and rescores 2,000 candidates (`IvfParams`: 448 of
4,096 lists at 1M rows), which reaches 0.99 on CLIP-like rows but not on every kind of data: on
100k-250k rows of a sparse-dictionary generator, whose nearest neighbours are barely closer than
random rows (cosine 0.57), it read 0.90-0.92, and a Gaussian mixture's stepped queries 0.98 (their
neighbours are near-ties the codes do not order). After each build the index is therefore checked
on 400 queries drawn from its own rows (200 of a row plus half another plus noise; 200 of a row
stepped along directions between rows: what the app's queries look like) against exact search,
and while either kind reads below the target, the search is widened one rung: 1.5x the probes
(coverage) or 2x the candidates (ordering; cheap, as the rerank settles early), whichever reads
higher, until a rung gains (almost) nothing. The result goes to `ivfpq.json` beside the index;
searches without explicit params use it.
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
"""The search chosen for the index in the same folder (its lists, rows, and the recall measured)."""
PROBE_STEP = 1.5
"""A coverage rung probes this many times the lists of the one before (up to every list)."""
RERANK_STEP = 2
"""An ordering rung rescores this many times the candidates (up to `MAX_RERANK_FACTOR` x the default's)."""
MAX_RERANK_FACTOR = 8


@dataclass(frozen=True)
class Tuning:
    """The search chosen for one IVF-PQ index and what it measured."""

    nlist: int
    count: int
    nprobe: int
    rerank: int
    recall: float
    """Recall@10 of the tuning queries at (nprobe, rerank): the lower of the two kinds' means."""
    target: float
    tried: dict[str, float]
    """"nprobe/rerank" -> recall@10 (the lower kind), every setting measured, in order."""

    def params(self, base: IvfParams = IvfParams()) -> IvfParams:
        """`base` probing `nprobe` of this index's `nlist` lists and rescoring up to `rerank` candidates."""
        return dataclasses.replace(base, nlist=self.nlist, nprobe=self.nprobe, rerank=self.rerank)


def tuning_queries(embeddings: np.ndarray, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """{'mixed': [count // 2, d], 'stepped': [count - count // 2, d]} float32 queries over `embeddings`' rows."""
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
    return {"mixed": mixed.astype(np.float32), "stepped": stepped.astype(np.float32)}


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


def tune_search(index, embeddings: np.ndarray, base: IvfParams = IvfParams(), target: float = 0.99,
                queries: int = 400, seed: int = 0, flat: float = 0.002) -> Tuning:
    """The narrowest search on the ladder (from `base` fitted to the index) whose recall@10 reaches
    `target` on each kind of tuning query. The climb stops early where a rung gains less than `flat`
    (a few outlying queries, not the search's width, hold the recall there) and keeps the rung below."""
    import faiss

    count, dim = embeddings.shape
    nlist = int(faiss.extract_index_ivf(index).nlist)
    shaped = base.for_index(count, dim, nlist)
    sets = [(qs, [set(row.tolist()) for row in exact_top(embeddings, qs)])
            for qs in tuning_queries(embeddings, min(queries, 2 * count), seed).values()]
    max_rerank = min(count, MAX_RERANK_FACTOR * shaped.rerank)
    tried: dict[str, float] = {}

    def recall(nprobe: int, rerank: int) -> float:
        searcher = IvfPqSearcher(index, embeddings, dataclasses.replace(shaped, nprobe=nprobe, rerank=rerank))
        kinds = [np.mean([len(t & set(searcher.search(q, 10)[0].tolist())) / 10 for q, t in zip(qs, truth)])
                 for qs, truth in sets]
        tried[f"{nprobe}/{rerank}"] = float(min(kinds))
        return tried[f"{nprobe}/{rerank}"]

    setting = (shaped.nprobe, min(shaped.rerank, max_rerank))
    reached = recall(*setting)
    while reached < target:
        wider = [w for w in ((min(nlist, math.ceil(setting[0] * PROBE_STEP)), setting[1]),
                             (setting[0], min(max_rerank, setting[1] * RERANK_STEP))) if w != setting]
        if not wider:
            break
        best, _, step = max((recall(*w), w[1] > setting[1], w) for w in wider)  # a tie goes to more candidates
        if best - reached < flat:
            break
        reached, setting = best, step
    if reached < target:
        log.warning("IVF-PQ index reaches recall@10 %.3f on its own rows (%d of %d lists, %d candidates)",
                    reached, setting[0], nlist, setting[1])
    return Tuning(nlist, count, setting[0], setting[1], reached, target, tried)


def save_tuning(folder: Path, tuning: Tuning) -> None:
    """Write `tuning` to folder/ivfpq.json atomically."""
    write_json_atomic(Path(folder) / TUNING_FILE, dataclasses.asdict(tuning))


def load_tuning(folder: Path, nlist: int) -> Tuning | None:
    """The tuning saved for an index of `nlist` lists in `folder`; None when absent, unreadable or another index's."""
    try:
        raw = json.loads((Path(folder) / TUNING_FILE).read_text())
        tuning = Tuning(int(raw["nlist"]), int(raw["count"]), int(raw["nprobe"]), int(raw["rerank"]),
                        float(raw["recall"]), float(raw["target"]), {str(k): float(v) for k, v in raw["tried"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return tuning if tuning.nlist == nlist and 1 <= tuning.nprobe <= nlist and tuning.rerank >= 1 else None


def tune_and_save(folder: Path, index, embeddings: np.ndarray, base: IvfParams = IvfParams()) -> Tuning:
    """`tune_search` the index over `embeddings` and save the result beside it."""
    tuning = tune_search(index, embeddings, base)
    save_tuning(folder, tuning)
    log.info("IVF-PQ search: %d of %d lists, up to %d candidates: recall@10 %.4f on its own rows",
             tuning.nprobe, tuning.nlist, tuning.rerank, tuning.recall)
    return tuning


def retune(folder: Path, embeddings: np.ndarray, growth: float = 0.05) -> Tuning:
    """Tune the index saved in `folder` over `embeddings`, its rows, after rows were added to it; the
    saved tuning stands while the index has grown by less than `growth` since it was measured."""
    import faiss

    from .ivf import IVF_FILE, load_ivfpq

    index = load_ivfpq(Path(folder) / IVF_FILE, embeddings.shape[1], len(embeddings))
    saved = load_tuning(folder, int(faiss.extract_index_ivf(index).nlist))
    if saved is not None and len(embeddings) <= saved.count * (1 + growth):
        return saved
    return tune_and_save(folder, index, embeddings)
