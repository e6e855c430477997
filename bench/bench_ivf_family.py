"""The IVF-PQ search across data it was not tuned on: probes tuned per index, the settling rerank.

    python bench/bench_ivf_family.py                 # 3 generators x 2 dims x 100k rows + the sample index
    python bench/bench_ivf_family.py --rows 250000 --only dictionary --dims 1152

The defaults (`IvfParams`: lists, probes, `settle` 1.5) were chosen at 1M x 1152 on bench_scale.py's
shards. Here each data set gets its own IVF-PQ index at the defaults fitted to its shape
(`IvfParams.for_shape`), with new seeds, 768- and 1152-d rows, and the sample index's real
demo-CLIP embeddings (9,463 x 256); its probes are then tuned on its own rows (ivf_tuning.py, as
`memetui index`/`import` do). Per data set, 300 noisy queries (image + ½ image + noise) and 300
stepped ones (image, then 1-4 steps of α 0.25 along each of two directions between random rows),
other draws than the tuning's, truth by exact search. Printed: recall@10 at the default probes and
at the tuned ones; at the tuned ones, the share of queries whose top 10 equal those of rescoring
every candidate, the median and 90th percentile of candidates rescored (of `rerank`), and the
median paired time ratio (settled / every candidate, query by query, alternating order, one thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_scale import GENERATORS  # noqa: E402

from memetui.index.ivf import IvfParams, IvfPqSearcher, build_ivfpq, exact_rerank  # noqa: E402
from memetui.index.ivf_tuning import exact_top, tune_search  # noqa: E402


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as fp16 (how an index stores them)."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def query_sets(emb: np.ndarray, count: int, seed: int) -> dict[str, np.ndarray]:
    """{'noisy': [count, d], 'stepped': [count, d]} float32 queries over `emb`."""
    rng = np.random.default_rng(seed)
    n, d = emb.shape
    rows = lambda idx: emb[idx].astype(np.float32)  # noqa: E731
    a, b = rng.integers(0, n, (2, count))
    noisy = rows(a) + 0.5 * rows(b) + 0.05 * rng.standard_normal((count, d)).astype(np.float32)
    q = rows(a) + rng.choice([0.0, 0.5], count)[:, None] * rows(b)
    for _ in range(2):
        u, v = rng.integers(0, n, (2, count))
        direction = rows(u) - rows(v)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-9
        steps = rng.integers(1, 5, count) * rng.choice([-1, 1], count)
        q = q + (0.25 * steps * np.linalg.norm(q, axis=1))[:, None] * direction
    return {"noisy": noisy, "stepped": q.astype(np.float32)}


def compare(name: str, emb: np.ndarray, queries: int, seed: int) -> None:
    """Build and tune the index, run the searches over both query sets, print one line per set."""
    import faiss

    started = time.perf_counter()
    index = build_ivfpq(emb)
    built = time.perf_counter() - started
    tuning = tune_search(index, emb)
    tuned_s = time.perf_counter() - started - built
    default = IvfParams().for_shape(*emb.shape)
    params = tuning.params()
    default_searcher = IvfPqSearcher(index, emb, default)
    faiss.omp_set_num_threads(1)
    for kind, qs in query_sets(emb, queries, seed).items():
        truth = exact_top(emb, qs)
        at_default = np.mean([len(set(default_searcher.search(q, 10)[0].tolist()) & set(t.tolist())) / 10
                              for q, t in zip(qs, truth)])
        settled = IvfPqSearcher(index, emb, params)
        every = IvfPqSearcher(index, emb, dataclasses.replace(params, settle=0))
        recall = {settled: [], every: []}
        times = {settled: [], every: []}
        same, rescored = 0, []
        for i, (q, true) in enumerate(zip(qs, truth)):
            found = {}
            for searcher in (settled, every) if i % 2 else (every, settled):
                t0 = time.perf_counter()
                found[searcher] = searcher.search(q, 10)[0]
                times[searcher].append(time.perf_counter() - t0)
                recall[searcher].append(len(set(found[searcher].tolist()) & set(true.tolist())) / 10)
            same += set(found[settled].tolist()) == set(found[every].tolist())
            rows, approx = settled.candidates(q, params.rerank)
            rescored.append(len(exact_rerank(emb, rows, approx, q, 10, params.settle, params.block)[0]))
        ratio = statistics.median(np.array(times[settled]) / np.array(times[every]))
        print(f"{name:22s} {kind:7s} IVF{tuning.nlist}: recall@10 {at_default:.4f} at {default.nprobe}/{default.rerank}, "
              f"{np.mean(recall[settled]):.4f} at the tuned {tuning.nprobe}/{tuning.rerank} (every candidate rescored "
              f"{np.mean(recall[every]):.4f}); same top 10 {same / len(qs):.3f}, rescored p50 "
              f"{int(np.median(rescored))} p90 {int(np.percentile(rescored, 90))} of {params.rerank}, time "
              f"{ratio:.2f}x  [built {built:.0f} s, tuned {tuned_s:.0f} s]", flush=True)


def main() -> None:
    """Every data set in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sample-index", type=Path, default=ROOT / "sample_index")
    parser.add_argument("--only", nargs="*", default=None, help="generator names (default: all, and the sample index)")
    parser.add_argument("--dims", type=int, nargs="*", default=[768, 1152])
    args = parser.parse_args()
    for dim in args.dims:
        for g, (name, generate) in enumerate(GENERATORS):
            if args.only and name not in args.only:
                continue
            rng = np.random.default_rng(100 + 10 * g + dim)  # seeds bench_scale.py's shards do not use
            compare(f"{name}-{dim}", unit_rows(generate(args.rows, dim, rng)), args.queries, seed=g)
    if args.only:
        return
    sample = np.load(args.sample_index / "embeddings.f16.npy")
    compare(f"sample index ({len(sample)})", sample, args.queries, seed=9)


if __name__ == "__main__":
    main()
