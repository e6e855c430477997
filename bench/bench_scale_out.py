"""Benchmark: Ray embedding vs the single-process indexer, and a keypress on Milvus-lite vs the local ANN.

    nice -n 10 python bench/bench_scale_out.py            # 300 real images, 100k x 512 synthetic vectors

1. Embedding: `--images` real images from sample_index/images with the shipped demo CLIP, on
   CPU, (a) through IndexBuilder (no thumbnails, no OCR: embedding only) and (b) through
   `embed_to_shards` on a local Ray (num_cpus = every core here, one actor per CPU slot).
   Throughput is measured on those images and extrapolated to `-n` rows (rows / rate; the
   fixed costs, model load and Ray start-up, are reported apart).
2. Vectors: `-n` x `-d` synthetic clustered unit vectors (bench_search.py's, HNSW graph cached in
   --cache). The same vectors are upserted into a milvus-lite collection (HNSW M 16,
   efConstruction 200, IP). A keypress (bench_step.py: step + SAE encode with a random
   16,384-latent SAE + top-12 + active features) is timed through Session with each ANN,
   plus plain search p50 and recall@10 vs exact on steered queries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_search import cached_store, make_queries  # noqa: E402
from bench_step import percentiles, random_sae, run_session  # noqa: E402


def sample_images(count: int, into: Path) -> Path:
    """Symlink `count` images spread over sample_index/images into `into` (sorted, every k-th)."""
    from memetui.index.scan import scan_folder

    files = scan_folder(ROOT / "sample_index" / "images").files
    step = max(1, len(files) // count)
    into.mkdir(parents=True)
    for i, (_, path) in enumerate(files[::step][:count]):
        (into / f"{i:05d}{path.suffix}").symlink_to(path)
    return into


def bench_single(images: Path, work: Path) -> dict:
    """Images/s of IndexBuilder (embedding only) with the demo model on CPU."""
    from memetui.embed import Embedder
    from memetui.index.build import BuildOptions, IndexBuilder, open_or_create

    started = time.perf_counter()
    embedder = Embedder(device="cpu")
    load = time.perf_counter() - started
    store = open_or_create(work / "single-index", images, embedder)
    started = time.perf_counter()
    summary = IndexBuilder(store, embedder, BuildOptions(thumbnails=False, ocr=False)).run()
    seconds = time.perf_counter() - started
    store.close()
    return {"rows": summary.added, "seconds": seconds, "fixed": load}


def bench_ray(images: Path, work: Path) -> dict:
    """Images/s of embed_to_shards on a local Ray (one actor per CPU slot), Ray start-up apart."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    from memetui.embed import DEFAULT_MODEL, DEFAULT_PRETRAINED
    from memetui.index.ray_embed import RayEmbedOptions, embed_to_shards

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="ray"))
    init = time.perf_counter() - started
    started = time.perf_counter()
    first = []  # (time, images done) at the first finished batch

    def progress(stage, done, total):
        if stage == "embed" and not first:
            first.append((time.perf_counter(), done))

    summary = embed_to_shards(images, work / "shards", DEFAULT_MODEL, DEFAULT_PRETRAINED,
                              RayEmbedOptions(shard_rows=100, batch_size=32), progress)
    seconds = time.perf_counter() - started
    ray.shutdown()
    after = started + seconds - first[0][0] if first else 0.0  # seconds from the first finished batch to the end
    steady = (summary.files - first[0][1]) / after if first and after > 0 else float("nan")
    return {"rows": summary.rows, "seconds": seconds, "fixed": init, "actors": summary.actors,
            "first_batch": (first[0][0] - started) if first else float("nan"), "steady": steady}


def bench_vectors(args) -> dict:
    """Keypress and search latency, recall@10, with the local ANN and with Milvus-lite over the same rows."""
    import torch

    from memetui.index.ann import AnnSearcher
    from memetui.index.milvus_ann import close_all, connect, parse_spec, sync_collection
    from memetui.session import Session

    torch.set_num_threads(2)
    store = cached_store(args.n, args.d, args.cache)
    queries = make_queries(store, 200, "mix")
    exact = AnnSearcher(store, exact=True)
    truth = [set(exact.search(q, 10).rows.tolist()) for q in queries]
    sae = random_sae(store.embeddings, 16_384, 32)
    out = {}
    local = AnnSearcher(store, exact=False)
    db = args.cache / f"milvus-{args.n}x{args.d}.db"
    store.manifest.ann = parse_spec(f"milvus-lite:{db}", store.path)  # in memory only: the cached index stays local
    client = connect(store.manifest.ann["uri"])
    if client.has_collection(store.manifest.ann["collection"]):
        client.drop_collection(store.manifest.ann["collection"])
    started = time.perf_counter()
    sync_collection(store)
    insert = time.perf_counter() - started
    client.release_collection(store.manifest.ann["collection"])  # as a new app process finds it
    started = time.perf_counter()
    milvus = AnnSearcher(store)  # loads the collection
    load = time.perf_counter() - started
    milvus.search(queries[0], 12)
    out["milvus_setup"] = (insert, load)
    for name, ann in (("local", local), ("milvus", milvus)):
        times = []
        found = 0
        for q, want in zip(queries, truth):
            started = time.perf_counter()
            rows = ann.search(q, 10).rows
            times.append((time.perf_counter() - started) * 1000)
            found += len(want & set(rows.tolist()))
        session = Session(store, sae=sae, ann=ann)
        run_session(session, 10, 12, fresh=False)  # warm up
        out[name] = {"backend": ann.backend, "search": percentiles(times), "recall": found / (10 * len(queries)),
                     "hold": percentiles(run_session(session, args.presses, 12, fresh=False)),
                     "fresh": percentiles(run_session(session, args.presses, 12, fresh=True, seed=3))}
    close_all()
    return out


def main() -> None:
    """Run both parts and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="real images embedded by each indexer")
    parser.add_argument("-n", type=int, default=100_000, help="rows (vectors part; embedding is extrapolated)")
    parser.add_argument("-d", type=int, default=512)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/memetui-bench"))
    parser.add_argument("--skip-embed", action="store_true")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

    if not args.skip_embed:
        work = Path(tempfile.mkdtemp(prefix="bench-scale"))
        try:
            images = sample_images(args.images, work / "images")
            single, ray_run = bench_single(images, work), bench_ray(images, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"\nembedding {args.images} real images (demo CLIP, CPU); {args.n:,} rows extrapolated as rows / rate:")
        print(f"{'indexer':<34}{'img/s':>8}{'fixed s':>9}{'100k rows':>11}")
        for name, run in (("single process (IndexBuilder)", single), (f"Ray Data, {ray_run['actors']} actors", ray_run)):
            rate = run["rows"] / run["seconds"]
            print(f"{name:<34}{rate:>8.1f}{run['fixed']:>9.1f}{args.n / rate / 60:>9.1f} m")
        print(f"  Ray: first shard after {ray_run['first_batch']:.1f} s (actor start + model load);"
              f" after it {ray_run['steady']:.1f} img/s; ratio Ray / single = "
              f"{(ray_run['rows'] / ray_run['seconds']) / (single['rows'] / single['seconds']):.2f}x")

    vec = bench_vectors(args)
    insert, load = vec["milvus_setup"]
    print(f"\nvectors: {args.n:,} x {args.d} synthetic; milvus-lite upsert + flush {insert:.1f} s,"
          f" load in a fresh searcher {load:.1f} s")
    print(f"{'ANN':<26}{'search p50':>11}{'recall@10':>10}{'key p50':>9}{'key p95':>9}{'new-feature p50':>17}")
    for name in ("local", "milvus"):
        row = vec[name]
        print(f"{name + ' (' + row['backend'] + ')':<26}{row['search'][0]:>9.2f}ms{row['recall']:>10.4f}"
              f"{row['hold'][0]:>7.2f}ms{row['hold'][1]:>7.2f}ms{row['fresh'][0]:>15.2f}ms")
    print(f"keypress milvus / local (p50): {vec['milvus']['hold'][0] / vec['local']['hold'][0]:.1f}x")


if __name__ == "__main__":
    main()
