"""Benchmark: HNSW (+ exact rerank) vs numpy brute force vs torch exact, side by side.

    python bench/bench_search.py                 # 100k x 512, p50 ms/query, recall@10, ratios
    python bench/bench_search.py --crossover     # where exact search stops beating HNSW

Data: synthetic clustered unit vectors (a shared mean, 1,000 clusters, noise), the shape CLIP
image embeddings have. Queries are sums of two data points plus noise (like steered queries).
The index is built once through IndexStore + the builder's graph code and cached in --cache.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memetui.index.ann import AnnSearcher, add_to_hnsw, new_hnsw  # noqa: E402
from memetui.index.build import BuildOptions  # noqa: E402
from memetui.index.store import HNSW, IndexStore, ModelInfo  # noqa: E402


def clustered_unit_vectors(n: int, dim: int, clusters: int = 1000, seed: int = 0) -> np.ndarray:
    """[n, dim] float32 unit vectors shaped like CLIP image embeddings.

    Cluster centres and within-cluster noise follow a power-law spectrum (variance ∝ 1/i in a
    random basis) and share a common mean direction: random pairs have cosine ≈ 0.5 and nearest
    neighbours ≈ 0.93, as in real CLIP indexes.
    """
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, dim + 1) ** -0.5).astype(np.float32)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    mean = rng.standard_normal(dim).astype(np.float32)
    mean /= np.linalg.norm(mean)
    centres = (rng.standard_normal((clusters, dim)).astype(np.float32) * scale) @ basis.T
    noise = (rng.standard_normal((n, dim)).astype(np.float32) * scale) @ basis.T
    x = centres[rng.integers(0, clusters, n)] + 0.5 * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x += mean
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cached_store(n: int, dim: int, cache: Path) -> IndexStore:
    """An IndexStore over synthetic data with an HNSW graph (built once, reused from `cache`)."""
    path = cache / f"bench-{n}x{dim}"
    if (path / "manifest.json").is_file():
        return IndexStore.open(path)
    data = clustered_unit_vectors(n, dim).astype(np.float16)
    store = IndexStore.create(path, ModelInfo("synthetic", None, dim, "0" * 64), ".")
    store.write_embeddings(data)
    started = time.perf_counter()
    options = BuildOptions()
    graph = new_hnsw(dim, n, options.hnsw_m, options.hnsw_ef_construction)
    add_to_hnsw(graph, data, 0, threads=2)
    graph.save_index(str(path / HNSW))
    print(f"  built HNSW over {n} x {dim} in {time.perf_counter() - started:.1f} s (cached in {path})")
    with store.db:
        store.db.executemany(
            "INSERT INTO items (id, path, sha256, status, embedding) VALUES (?, ?, ?, 'ok', x'')",
            ((i, f"{i}.png", f"{i:064x}") for i in range(n)),
        )
    store.manifest.count = n
    store.manifest.hnsw.update(M=options.hnsw_m, ef_construction=options.hnsw_ef_construction)
    store.write_manifest()
    return IndexStore.open(path)


def timed(fn, queries) -> tuple[float, list]:
    """p50 milliseconds of fn(q) over queries, and the outputs."""
    out, times = [], []
    for q in queries:
        started = time.perf_counter()
        out.append(fn(q))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), out


QUERY_KINDS = {"mix": "steered: one image + 0.5 x another + noise", "near": "an image + noise (image as query)"}


def make_queries(store: IndexStore, count: int, kind: str, seed: int = 1) -> list[np.ndarray]:
    """`count` queries of one of the QUERY_KINDS."""
    rng = np.random.default_rng(seed)
    emb = store.embeddings
    picks = rng.integers(0, store.count, (count, 2))
    if kind == "near":
        noise = 0.03 * rng.standard_normal((count, store.dim)).astype(np.float32)
        return [emb[a].astype(np.float32) + e for (a, _), e in zip(picks, noise)]
    noise = 0.05 * rng.standard_normal((count, store.dim)).astype(np.float32)
    return [emb[a].astype(np.float32) + 0.5 * emb[b].astype(np.float32) + e for (a, b), e in zip(picks, noise)]


def compare(n: int, dim: int, k: int, cache: Path, queries: int, ef: int, kind: str = "mix") -> dict:
    """Run every method on the same queries; return p50s and recall."""
    import torch

    torch.set_num_threads(2)
    store = cached_store(n, dim, cache)
    qs = make_queries(store, queries, kind)
    matrix = np.asarray(store.embeddings, dtype=np.float32)
    tensor = torch.from_numpy(matrix)

    def numpy_brute(q):
        scores = matrix @ q
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    def torch_exact(q):
        return torch.topk(tensor @ torch.from_numpy(q), k).indices.numpy()

    hnsw = AnnSearcher(store, exact=False, ef=ef)
    exact = AnnSearcher(store, exact=True)
    exact.matrix  # materialise the float32 copy outside the timed loop
    for fn in (numpy_brute, torch_exact, lambda q: hnsw.search(q, k)):  # warm caches
        fn(qs[0])
    results = {}
    results["numpy brute force"], truth = timed(numpy_brute, qs)
    results["torch exact"], _ = timed(torch_exact, qs)
    results["memetui exact"], _ = timed(lambda q: exact.search(q, k).rows, qs)
    results["memetui hnsw+rerank"], found = timed(lambda q: hnsw.search(q, k).rows, qs)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))
    return {"p50": results, "recall": recall}


def main() -> None:
    """Print the side-by-side table (and optionally the exact/HNSW crossover)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("-d", type=int, default=512)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--ef", type=int, default=128)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/memetui-bench"))
    parser.add_argument("--crossover", action="store_true", help="also time exact vs HNSW at several sizes")
    args = parser.parse_args()

    print(f"top-{args.k} of {args.n:,} x {args.d} clustered unit vectors, {args.queries} queries, ef={args.ef}")
    for kind in ("mix", "near"):
        result = compare(args.n, args.d, args.k, args.cache, args.queries, args.ef, kind)
        base = result["p50"]["numpy brute force"]
        print(f"\nqueries: {QUERY_KINDS[kind]}")
        print(f"{'method':<22}{'p50 ms':>10}{'vs numpy':>11}")
        for name, ms in result["p50"].items():
            print(f"{name:<22}{ms:>10.3f}{base / ms:>10.1f}x")
        print(f"recall@{args.k} (hnsw+rerank vs exact): {result['recall']:.4f}")
    if args.crossover:
        print("\nexact vs hnsw crossover:")
        for n in (5_000, 10_000, 15_000, 20_000, 30_000):
            r = compare(n, args.d, args.k, args.cache, 200, args.ef)["p50"]
            winner = "exact" if r["memetui exact"] < r["memetui hnsw+rerank"] else "hnsw"
            print(f"  n={n:>6}: exact {r['memetui exact']:.3f} ms, hnsw {r['memetui hnsw+rerank']:.3f} ms -> {winner}")


if __name__ == "__main__":
    main()
