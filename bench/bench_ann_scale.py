"""ANN candidates at 1M x 1152: build time, bytes, recall@10 vs exact per data generator, p50 per query.

    nice -n 10 python bench/bench_ann_scale.py --data /work/scale_data                  # every candidate
    python bench/bench_ann_scale.py --data /work/scale_data --only ivf1024_pq288x4fs   # one
    python bench/bench_ann_scale.py --data /work/scale_data --only import --torch      # the import's own index

Reads DATA/full (an imported index over bench_scale.py's shards: 10 shards of 100k rows from
three generators in turn, clustered / dictionary / mixture) and writes DATA/ann/<name>.faiss
(built once, reused) and DATA/ann/results.json. Two query sets of 300 each, truth by exact search
over the memmap (cached in DATA/ann/):

- `noisy`: image + 0.5 x another image + 0.05 N(0, I) (bench_scale.py's 'steered', as before);
- `stepped`: image (+ 0.5 x another in half the queries), then 1-4 steps of α = 0.25 along each of
  two SAE decoder directions (DATA/full/sae/keypress65k), as `l`/`h` make them.

Per query: the faiss search for R candidates, then exact scores of those rows from the fp16
memmap and the top 10: what memetui.index.ivf.IvfPqSearcher does. recall@10 strict (|found ∩
true top 10| / 10) and tie-aware (a found row counts when its exact score is within 0.5 % of the
true 10th score: ann-benchmarks' epsilon recall at ε = 0.005). Timing: wall p50 and this thread's
CPU p50, one faiss thread, one BLAS thread (the box is shared: wall includes waiting for a core).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import exact_top  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from memetui.index.ivf import IVF_FILE, load_ivfpq  # noqa: E402

GENERATORS = ("clustered", "dictionary", "mixture")
CANDIDATES = {  # name: (faiss factory, [(nprobe, R), ...])
    "ivf1024_pq96": ("IVF1024,PQ96", [(16, 100), (32, 200), (64, 1000), (128, 2000)]),
    "ivf1024_pq288x4fs": ("IVF1024,PQ288x4fs", [(32, 1000), (64, 1000), (64, 2000), (128, 2000)]),
    "ivf1024_pq576x4fs": ("IVF1024,PQ576x4fs", [(32, 1000), (64, 1000), (64, 2000), (128, 2000), (128, 4000)]),
    "ivf4096_pq576x4fs": ("IVF4096,PQ576x4fs", [(128, 1000), (256, 1500), (384, 2000), (512, 2000)]),
    "ivf2048_pq576x4fs": ("IVF2048,PQ576x4fs", [(192, 2000), (256, 2000), (288, 2000), (320, 2000)]),
    "import": (None, [(448, 2000), (384, 3000), (448, 3000)]),  # DATA/full's own index, as `memetui import` built it
}


def queries(emb, kind: str, sae_file: Path, count: int = 300):
    """(queries [count, d] float32, generator name of each query's image)."""
    n, d = emb.shape
    if kind == "noisy":
        rng = np.random.default_rng(1)
        a, b = rng.integers(0, n, (2, count))
        q = emb[a].astype(np.float32) + 0.5 * emb[b].astype(np.float32) \
            + 0.05 * rng.standard_normal((count, d)).astype(np.float32)
    else:
        from safetensors import safe_open

        with safe_open(str(sae_file), "np") as f:
            dec = f.get_tensor("W_dec")
        rng = np.random.default_rng(11)
        a, b = rng.integers(0, n, (2, count))
        q = emb[a].astype(np.float32) + rng.choice([0.0, 0.5], count)[:, None] * emb[b].astype(np.float32)
        for _ in range(2):
            j = rng.integers(0, len(dec), count)
            steps = rng.integers(1, 5, count) * rng.choice([-1, 1], count)
            q = q + (0.25 * steps * np.linalg.norm(q, axis=1))[:, None] * dec[j]
    return q.astype(np.float32), np.array(GENERATORS)[(a // 100_000) % 3]


def build(name: str, factory: str, emb, folder: Path, coarse_from: Path | None) -> dict:
    """Train + fill the index (coarse centroids reused from `coarse_from` when given); time and bytes."""
    import faiss

    faiss.omp_set_num_threads(2)
    file = folder / f"{name}.faiss"
    if file.is_file():
        return json.loads((folder / f"{name}.build.json").read_text())
    started = time.perf_counter()
    n, d = emb.shape
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    if coarse_from is not None and coarse_from.is_file():
        quantizer = faiss.downcast_index(faiss.extract_index_ivf(faiss.read_index(str(coarse_from))).quantizer)
        ivf.quantizer.add(quantizer.reconstruct_n(0, quantizer.ntotal))  # a full quantizer is not retrained
    sample = np.sort(np.random.default_rng(0).choice(n, 65_536, replace=False))
    index.train(np.ascontiguousarray(emb[sample], dtype=np.float32))
    trained = time.perf_counter() - started
    for lo in range(0, n, 65_536):
        index.add(np.ascontiguousarray(emb[lo:lo + 65_536], dtype=np.float32))
    faiss.write_index(index, str(file))
    out = {"factory": factory, "train_s": trained, "build_s": time.perf_counter() - started,
           "bytes": file.stat().st_size, "loadavg": os.getloadavg()[0]}
    (folder / f"{name}.build.json").write_text(json.dumps(out))
    return out


def evaluate(file: Path, emb, qs, truth, gen, nprobe: int, rerank: int, previous: bool = False) -> dict:
    """Recall (strict, tie-aware) per generator and timing of one (nprobe, R) setting."""
    from memetui.index.ivf import IvfParams, IvfPqSearcher

    index = load_ivfpq(file, emb.shape[1], emb.shape[0])
    params = IvfParams(nprobe=nprobe, rerank=rerank)
    if previous:  # faiss's own fast-scan loop, every candidate rescored
        params = dataclasses.replace(params, scan=0, settle=0)
    searcher = IvfPqSearcher(index, emb, params, threads=1)
    walls, cpus, strict, loose = [], [], [], []
    for q, true in zip(qs, truth):
        w0, c0 = time.perf_counter(), time.thread_time()
        top, _ = searcher.search(q, 10)  # what the app and `memetui search` run
        cpus.append((time.thread_time() - c0) * 1000)
        walls.append((time.perf_counter() - w0) * 1000)
        true_scores = emb[np.sort(true[:10])].astype(np.float32) @ q
        tenth = float(np.min(true_scores))
        got = emb[np.sort(top)].astype(np.float32) @ q
        strict.append(len(set(top.tolist()) & set(true[:10].tolist())) / 10)
        loose.append(float(np.mean(got >= tenth - 0.005 * abs(tenth))))
    strict, loose = np.array(strict), np.array(loose)
    per = {g: {"strict": round(float(strict[gen == g].mean()), 4), "tie_aware": round(float(loose[gen == g].mean()), 4)}
           for g in GENERATORS}
    return {"nprobe": nprobe, "rerank": rerank, "p50_wall_ms": statistics.median(walls),
            "p50_cpu_ms": statistics.median(cpus), "recall_strict": float(strict.mean()),
            "recall_tie_aware": float(loose.mean()), "per_generator": per, "loadavg": os.getloadavg()[0]}


def main() -> None:
    """Build each candidate once, evaluate each setting, write DATA/ann/results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/scale_data"))
    parser.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--torch", action="store_true", help="import torch first, as the app has (faster fp16 rerank)")
    parser.add_argument("--previous", action="store_true",
                        help="the search before 2026-12-02: faiss's own fast-scan loop, every candidate rescored")
    parser.add_argument("--settings", default=None, help="(nprobe, R) pairs instead of each candidate's, e.g. 64:1000,128:2000")
    args = parser.parse_args()
    if args.torch:
        import torch  # noqa: F401

        torch.set_num_threads(1)
    folder = args.data / "ann"
    folder.mkdir(exist_ok=True)
    emb = np.load(args.data / "full" / "embeddings.f16.npy", mmap_mode="r")
    sets = {}
    for kind in ("noisy", "stepped"):
        qs, gen = queries(emb, kind, args.data / "full" / "sae" / "keypress65k.safetensors", args.queries)
        cached = folder / f"truth_{kind}_{args.queries}.npy"
        if not cached.is_file():
            np.save(cached, exact_top(emb, qs, k=10))
        sets[kind] = (qs, np.load(cached), gen)
    results_file = folder / "results.json"
    for name, (factory, settings) in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        # the first import's IVF1024,PQ96 (copied here once) lends the others its coarse centroids
        coarse = folder / "ivf1024_pq96.faiss" if name != "ivf1024_pq96" else None
        if factory is None:
            file = args.data / "full" / IVF_FILE
            entry = {"torch_loaded": args.torch, "build": {"file": str(file)}, "settings": []}
        else:
            entry = {"torch_loaded": args.torch, "build": build(name, factory, emb, folder, coarse), "settings": []}
            file = folder / f"{name}.faiss"
        if args.settings:
            settings = [tuple(int(v) for v in pair.split(":")) for pair in args.settings.split(",")]
        for nprobe, rerank in settings:
            row = {kind: evaluate(file, emb, qs, truth, gen, nprobe, rerank, args.previous) for kind, (qs, truth, gen) in sets.items()}
            entry["settings"].append(row)
            for kind, r in row.items():
                print(f"{name} {kind:7s} nprobe {nprobe:3d} R {rerank:4d}: strict {r['recall_strict']:.4f} tie-aware "
                      f"{r['recall_tie_aware']:.4f} p50 {r['p50_wall_ms']:.2f} ms wall {r['p50_cpu_ms']:.2f} ms CPU "
                      f"{ {g: v['strict'] for g, v in r['per_generator'].items()} }", flush=True)
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}  # other runs' entries kept
        results[name + ("+torch" if args.torch else "") + ("+previous" if args.previous else "")] = entry
        results_file.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
