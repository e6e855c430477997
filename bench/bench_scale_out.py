"""Benchmark: Ray embedding vs the single-process indexer, and a keypress on Milvus-lite vs the local ANN.

    nice -n 10 python bench/bench_scale_out.py            # 160 + 800 real images, 100k x 512 synthetic vectors

1. Embedding: `--images` / 5 and `--images` real images from sample_index/images with the
   shipped demo CLIP, on CPU, each to a searchable index: (a) IndexBuilder (no thumbnails, no
   OCR) and (b) `embed_to_shards` on a local Ray (num_cpus = every core here, one actor per CPU
   slot) followed by the import of its shards. The rate is the difference of the two sizes (so
   start-up drops out) and is extrapolated to `-n` rows as start + fixed + rows / rate.
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


def sample_images(count: int, into: Path, offset: int = 0) -> Path:
    """Symlink `count` images spread over sample_index/images into `into` (every k-th, from `offset`)."""
    from memetui.index.scan import scan_folder

    files = scan_folder(ROOT / "sample_index" / "images").files
    step = max(1, len(files) // (count + offset))
    into.mkdir(parents=True)
    for i, (_, path) in enumerate(files[offset * step::step][:count]):
        (into / f"{i:05d}{path.suffix}").symlink_to(path)
    return into


def fit(runs: list[tuple[int, float]]) -> tuple[float, float]:
    """(images/s, fixed seconds) from two runs (rows, seconds): start-up costs drop out of the rate."""
    (n0, t0), (n1, t1) = runs
    rate = (n1 - n0) / max(t1 - t0, 1e-9)
    return rate, t1 - n1 / rate


def bench_single(folders: list[Path], work: Path, threads: int | None = None) -> dict:
    """IndexBuilder (no thumbnails, no OCR) with the demo model on CPU over each folder; model load apart."""
    import torch

    from memetui.embed import Embedder
    from memetui.index.build import BuildOptions, IndexBuilder, open_or_create

    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    started = time.perf_counter()
    embedder = Embedder(device="cpu")
    load = time.perf_counter() - started
    runs = []
    for i, folder in enumerate(folders):
        started = time.perf_counter()
        store = open_or_create(work / f"single-{threads}-{i}", folder, embedder)
        summary = IndexBuilder(store, embedder, BuildOptions(thumbnails=False, ocr=False)).run()
        store.close()
        runs.append((summary.added, time.perf_counter() - started))
    torch.set_num_threads(default)
    return {"runs": runs, "load": load}


def bench_ray(folders: list[Path], work: Path) -> dict:
    """embed_to_shards on a local Ray (one actor per CPU slot) + the import of its shards, per folder; Ray start apart."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    from memetui.embed import DEFAULT_MODEL, DEFAULT_PRETRAINED
    from memetui.index.importer import Importer, ImportOptions
    from memetui.index.importers import open_source
    from memetui.index.ray_embed import RayEmbedOptions, embed_to_shards

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="ray"))
    init = time.perf_counter() - started
    runs, jobs, actors, busy = [], [], 0, 0.0
    for i, folder in enumerate(folders):
        started = time.perf_counter()
        summary = embed_to_shards(folder, work / f"shards-{i}", DEFAULT_MODEL, DEFAULT_PRETRAINED,
                                  RayEmbedOptions(shard_rows=100, batch_size=32))
        jobs.append((summary.rows, time.perf_counter() - started))
        Importer(open_source(work / f"shards-{i}"), work / f"ray-{i}", DEFAULT_MODEL, DEFAULT_PRETRAINED,
                 ImportOptions(device="cpu")).run()
        runs.append((summary.rows, time.perf_counter() - started))
        actors, busy = summary.actors, summary.actor_seconds
    ray.shutdown()
    return {"runs": runs, "jobs": jobs, "load": init, "actors": actors, "busy": busy}


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
    batch = np.stack(queries[:100]).astype(np.float32)
    started = time.perf_counter()
    client.search(store.manifest.ann["collection"], data=list(batch), limit=24, output_fields=["row"],
                  search_params={"metric_type": "IP", "params": {"ef": 128}})
    out["milvus_batch_ms"] = (time.perf_counter() - started) * 1000 / len(batch)
    close_all()
    return out


def main() -> None:
    """Run both parts and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=800, help="real images embedded by each indexer (and 1/5 of it)")
    parser.add_argument("-n", type=int, default=100_000, help="rows (vectors part; embedding is extrapolated)")
    parser.add_argument("-d", type=int, default=512)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/memetui-bench"))
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-vectors", action="store_true")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

    if not args.skip_embed:
        work = Path(tempfile.mkdtemp(prefix="bench-scale"))
        small = args.images // 5
        try:
            folders = [sample_images(small, work / "small"), sample_images(args.images, work / "large", 1)]
            single, single_1 = bench_single(folders, work), bench_single(folders, work, threads=1)
            ray_run = bench_ray(folders, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"\nembedding real images (sample_index/images, demo CLIP, CPU): {small} and {args.images} images per"
              f" indexer; rate = difference of the two runs (start-up drops out); {args.n:,} rows = start + fixed + rows / rate")
        print(f"{'indexer (to a searchable index)':<52}{'img/s':>8}{'fixed s':>9}{'start s':>9}{'100k rows':>11}")
        rates = {}
        for name, run in ((f"single process (IndexBuilder), torch {os.cpu_count()} threads", single),
                          ("single process (IndexBuilder), torch 1 thread", single_1),
                          (f"Ray Data, {ray_run['actors']} actors x 1 thread + import", ray_run)):
            rate, fixed = fit(run["runs"])
            rates[name] = rate
            print(f"{name:<52}{rate:>8.1f}{fixed:>9.1f}{run['load']:>9.1f}{(run['load'] + fixed + args.n / rate) / 60:>9.1f} m")
        rows, seconds = ray_run["jobs"][-1]
        inside = rows / (ray_run["busy"] / ray_run["actors"])
        print(f"  Ray job alone ({rows} images): {seconds:.1f} s; inside the actors {inside:.1f} img/s"
              f" (images / (busy seconds / actors)); the rest is actor start, model load, scheduling")
        print(f"  runs (images, s): single {[(n, round(t, 1)) for n, t in single['runs']]}, 1 thread"
              f" {[(n, round(t, 1)) for n, t in single_1['runs']]}, Ray + import"
              f" {[(n, round(t, 1)) for n, t in ray_run['runs']]}")
        values = list(rates.values())
        print(f"  ratio Ray / single process: {values[2] / values[0]:.2f}x (default threads),"
              f" {values[2] / values[1]:.2f}x (1 thread)")

    if args.skip_vectors:
        return
    vec = bench_vectors(args)
    insert, load = vec["milvus_setup"]
    print(f"\nvectors: {args.n:,} x {args.d} synthetic; milvus-lite upsert + flush + segment index build {insert:.1f} s,"
          f" load in a fresh searcher {load:.1f} s")
    print(f"{'ANN':<26}{'search p50':>11}{'recall@10':>10}{'key p50':>9}{'key p95':>9}{'new-feature p50':>17}")
    for name in ("local", "milvus"):
        row = vec[name]
        print(f"{name + ' (' + row['backend'] + ')':<26}{row['search'][0]:>9.2f}ms{row['recall']:>10.4f}"
              f"{row['hold'][0]:>7.2f}ms{row['hold'][1]:>7.2f}ms{row['fresh'][0]:>15.2f}ms")
    print(f"keypress milvus / local (p50): {vec['milvus']['hold'][0] / vec['local']['hold'][0]:.1f}x")
    print(f"milvus-lite, 100 queries in one call: {vec['milvus_batch_ms']:.2f} ms per query")


if __name__ == "__main__":
    main()
