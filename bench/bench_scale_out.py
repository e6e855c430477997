"""Benchmark, one run on the same N rows: Ray embedding vs the single-process indexer, then a keypress
with Milvus-lite vs the local ANN on the index that was just built.

    nice -n 10 python bench/bench_scale_out.py                   # 100,000 images (cached in /work/scale_out_data)
    nice -n 10 python bench/bench_scale_out.py --deadline 03:50  # stop adding rounds that would end past it

1. Images: small varied images (96-320 px a side; a random two-colour gradient, 2-9 random
   ellipses, rectangles, polygons, lines and capital-letter words, some blurred; 75 % JPEG
   quality 70-95, 25 % PNG; about 6 kB each), generated once with a fixed seed into
   --data/images/bNNN/ (1,000 per folder) and reused by later runs.
2. Embedding, measured (not extrapolated), with the shipped demo CLIP on CPU: both indexers work
   on the same folder, which grows by --step images (10,000) a round; in each round (a) the
   single-process IndexBuilder (what `memetui index --no-ocr --no-thumbs` runs: decoding threads
   + torch with its default threads) updates its index (embeds the new files, extends the HNSW
   graph), then (b) `embed_to_shards` on one local Ray (num_cpus = every core, one actor per CPU
   slot, 1 torch thread each, at the driver's niceness: RAY_worker_niceness=0, where Ray's default
   would run them 15 steps nicer than the single process) writes the round's new shard. Alternating keeps both under the
   same share of a shared machine. After the last round the Ray shards are imported into a
   searchable index, as `--ray` does. Model load and Ray start are timed apart. With --deadline
   the run stops after the last round that leaves --reserve minutes, and reports that size.
3. Vectors, on the index the single-process indexer built: the same rows upserted into a
   milvus-lite collection (HNSW M 16, efConstruction 200, IP). A keypress (bench_step.py: step +
   SAE encode with a random 16,384-latent SAE + top-12 + active features) is timed through
   Session with each ANN, plus plain search p50 and recall@10 vs exact on steered queries.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_search import make_queries
from bench_step import percentiles, random_sae, run_session

PER_FOLDER = 1_000
WORDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ "


def log(message: str) -> None:
    """A timestamped progress line on stderr (the figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()[0]:.1f}] {message}",
          file=sys.stderr, flush=True)


def make_image(seed: int) -> tuple[bytes, str]:
    """One small varied image (encoded bytes, suffix), fully determined by `seed`."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    w, h = rng.randint(96, 320), rng.randint(96, 320)
    colours = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(2)]
    ramp = Image.linear_gradient("L").resize((w, h)).rotate(rng.randrange(360))
    img = Image.composite(Image.new("RGB", (w, h), colours[0]), Image.new("RGB", (w, h), colours[1]), ramp)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 9)):
        fill = tuple(rng.randrange(256) for _ in range(3))
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = (x0, y0, x0 + rng.randint(8, w), y0 + rng.randint(8, h))
        points = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(3, 6))]
        kind = rng.randrange(5)
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            draw.rectangle(box, fill=fill)
        elif kind == 2:
            draw.polygon(points, fill=fill)
        elif kind == 3:
            draw.line(points, fill=fill, width=rng.randint(1, 8))
        else:
            text = "".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            draw.text((x0 % (w - 20), y0 % (h - 12)), text, fill=fill)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    buffer = io.BytesIO()
    if rng.random() < 0.75:
        img.save(buffer, "JPEG", quality=rng.randint(70, 95))
        return buffer.getvalue(), ".jpg"
    img.save(buffer, "PNG")
    return buffer.getvalue(), ".png"


def make_folder(job: tuple[Path, int]) -> int:
    """Write folder `b` of PER_FOLDER images (to a temporary name, renamed when whole); returns b."""
    images, b = job
    final = images / f"b{b:03d}"
    if final.is_dir():
        return b
    partial = images / f".partial-b{b:03d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for i in range(PER_FOLDER):
        data, suffix = make_image(b * PER_FOLDER + i)
        (partial / f"{i:04d}{suffix}").write_bytes(data)
    partial.rename(final)
    return b


def image_folder(n: int, data: Path) -> Path:
    """The folder of generated images holding at least the first `n` (made on first use, cached under `data`)."""
    if n % PER_FOLDER:
        raise SystemExit(f"-n must be a multiple of {PER_FOLDER}")
    images = data / "images"
    images.mkdir(parents=True, exist_ok=True)
    folders = n // PER_FOLDER
    missing = [b for b in range(folders) if not (images / f"b{b:03d}").is_dir()]
    if missing:
        log(f"generating {len(missing) * PER_FOLDER:,} images into {images}")
        started = time.perf_counter()
        with multiprocessing.Pool(os.cpu_count()) as pool:
            for done, _ in enumerate(pool.imap_unordered(make_folder, [(images, b) for b in missing]), 1):
                if done % 10 == 0:
                    log(f"  {done}/{len(missing)} folders")
        log(f"generated in {time.perf_counter() - started:.0f} s")
    return images


def throttled(name: str, every: float = 60.0):
    """A progress(stage, done, total) callback that logs at most once a minute per stage (and each stage's end)."""
    last: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last.setdefault(stage, now) > every:
            last[stage] = now
            log(f"  {name} {stage} {done:,}/{total:,}")

    return progress


def grow(images: Path, grown: Path, folders: range) -> None:
    """Add generated folders `folders` to `grown` as folders of symlinks (the indexers see a growing tree)."""
    for b in folders:
        into = grown / f"b{b:03d}"
        into.mkdir(parents=True)
        for path in sorted((images / f"b{b:03d}").iterdir()):
            (into / path.name).symlink_to(path)


def bench_embedding(images: Path, work: Path, n: int, step: int, deadline: float, reserve: float) -> dict:
    """Both indexers over the same growing folder, `step` new images a round, alternating, until `n` or the deadline.

    Single process: IndexBuilder (no thumbnails, no OCR; default batch, decoding threads and torch
    threads) updates one index each round (embeds the new files, extends the HNSW graph). Ray:
    `embed_to_shards` on one local Ray (one actor per CPU slot) writes the round's new shard
    (shard = `step` files); after the last round its shards are imported into a new index, as
    `--ray` does. Model load and Ray start are timed apart.
    """
    import torch

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_worker_niceness"] = "0"  # Ray's default (15) would put its actors 15 below the single process
    import ray

    from memetui.embed import DEFAULT_MODEL, DEFAULT_PRETRAINED, Embedder
    from memetui.index.build import BuildOptions, IndexBuilder, open_or_create
    from memetui.index.importer import Importer, ImportOptions
    from memetui.index.importers import open_source
    from memetui.index.ray_embed import RayEmbedOptions, embed_to_shards

    grown, shards = work / "images", work / "shards"
    grown.mkdir()
    started = time.perf_counter()
    embedder = Embedder(device="cpu")
    out = {"load": time.perf_counter() - started, "threads": torch.get_num_threads(), "rounds": []}
    options = BuildOptions(thumbnails=False, ocr=False)
    log(f"model loaded in {out['load']:.1f} s; single process: torch {out['threads']} threads,"
        f" {options.workers} decoding threads, batch {options.batch_size}")
    temp = tempfile.mkdtemp(prefix="ray")
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    out["ray_start"] = time.perf_counter() - started
    log(f"Ray started in {out['ray_start']:.1f} s")
    per_folder = step // PER_FOLDER
    try:
        for r in range(n // step):
            if out["rounds"]:
                last = out["rounds"][-1]
                if time.time() + 1.2 * (last["single"] + last["ray"]) + reserve > deadline:
                    log(f"stopping after {r * step:,} images: another round would end past the deadline")
                    break
            grow(images, grown, range(r * per_folder, (r + 1) * per_folder))
            started = time.perf_counter()
            store = open_or_create(work / "single-index", grown, embedder)
            built = IndexBuilder(store, embedder, options, throttled("single")).run()
            store.close()
            single = time.perf_counter() - started
            started = time.perf_counter()
            embedded = embed_to_shards(grown, shards, DEFAULT_MODEL, DEFAULT_PRETRAINED,
                                       RayEmbedOptions(shard_rows=step, batch_size=options.batch_size), throttled("Ray"))
            out["rounds"].append({"rows": (r + 1) * step, "single": single, "ray": time.perf_counter() - started,
                                  "added": built.added, "embedded": embedded.rows, "actors": embedded.actors,
                                  "busy": embedded.actor_seconds, "load": os.getloadavg()[0]})
            row = out["rounds"][-1]
            print(f"round {r + 1}: {row['rows']:>7,} images; single process +{built.added:,} in {single:.1f} s,"
                  f" Ray +{embedded.rows:,} in {row['ray']:.1f} s ({embedded.actors} actors, busy"
                  f" {embedded.actor_seconds:.1f} s); load {row['load']:.1f}", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    log("importing the Ray shards")
    started = time.perf_counter()
    imported = Importer(open_source(shards), work / "ray-index", DEFAULT_MODEL, DEFAULT_PRETRAINED,
                        ImportOptions(device="cpu")).run()
    out["import"] = time.perf_counter() - started
    log(f"import: {imported.line()}")
    return out


def bench_vectors(store, db: Path, presses: int) -> dict:
    """Keypress and search latency, recall@10, with the local ANN and with Milvus-lite (collection in `db`,
    made afresh) over the rows of `store`."""
    import torch

    from memetui.index.ann import AnnSearcher
    from memetui.index.milvus_ann import close_all, connect, parse_spec, sync_collection
    from memetui.session import Session

    torch.set_num_threads(2)
    queries = make_queries(store, 200, "mix")
    exact = AnnSearcher(store, exact=True)
    truth = [set(exact.search(q, 10).rows.tolist()) for q in queries]
    sae = random_sae(store.embeddings, 16_384, 32)
    out = {"rows": store.count, "dim": store.dim}
    local = AnnSearcher(store, exact=False)
    store.manifest.ann = parse_spec(f"milvus-lite:{db}", store.path)  # in memory only: the index stays local
    client = connect(store.manifest.ann["uri"])
    if client.has_collection(store.manifest.ann["collection"]):
        client.drop_collection(store.manifest.ann["collection"])
    log(f"milvus-lite: upserting {store.count:,} rows")
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
        log(f"keypresses with {name}")
        times, found = [], 0
        for q, want in zip(queries, truth):
            started = time.perf_counter()
            rows = ann.search(q, 10).rows
            times.append((time.perf_counter() - started) * 1000)
            found += len(want & set(rows.tolist()))
        session = Session(store, sae=sae, ann=ann)
        run_session(session, 10, 12, fresh=False)  # warm up
        out[name] = {"backend": ann.backend, "search": percentiles(times), "recall": found / (10 * len(queries)),
                     "hold": percentiles(run_session(session, presses, 12, fresh=False)),
                     "fresh": percentiles(run_session(session, presses, 12, fresh=True, seed=3))}
    batch = np.stack(queries[:100]).astype(np.float32)
    started = time.perf_counter()
    client.search(store.manifest.ann["collection"], data=list(batch), limit=24, output_fields=["row"],
                  search_params={"metric_type": "IP", "params": {"ef": 128}})
    out["milvus_batch_ms"] = (time.perf_counter() - started) * 1000 / len(batch)
    close_all()
    return out


def report_embedding(run: dict) -> None:
    rounds = run["rounds"]
    rows = rounds[-1]["rows"]
    single = sum(r["single"] for r in rounds)
    ray_jobs = sum(r["ray"] for r in rounds)
    ray_total = ray_jobs + run["import"]
    print(f"\nembedding {rows:,} generated images (demo CLIP, CPU), both indexers over the same images in"
          f" {len(rounds)} alternating rounds of {rounds[0]['rows']:,}, each to a searchable index (measured)")
    print(f"{'indexer':<58}{'rows':>8}{'wall s':>9}{'img/s':>8}{'start s':>9}")
    for name, seconds, start in ((f"single process (IndexBuilder), torch {run['threads']} threads", single, run["load"]),
                                 (f"Ray Data, {rounds[-1]['actors']} actors x 1 thread, then the import", ray_total,
                                  run["ray_start"])):
        print(f"{name:<58}{rows:>8,}{seconds:>9.1f}{rows / seconds:>8.1f}{start:>9.1f}")
    busy = sum(r["busy"] for r in rounds) / rounds[-1]["actors"]
    print(f"  Ray jobs {ray_jobs:.1f} s ({rows / ray_jobs:.1f} img/s) + import {run['import']:.1f} s;"
          f" inside the actors {rows / busy:.1f} img/s (images / (busy seconds / actors))")
    print(f"  ratio Ray / single process (img/s, start apart): {single / ray_total:.2f}x")


def report_vectors(vec: dict, what: str) -> None:
    insert, load = vec["milvus_setup"]
    print(f"\nvectors: {what}, {vec['rows']:,} x {vec['dim']}; milvus-lite upsert + flush +"
          f" segment index build {insert:.1f} s, load in a fresh searcher {load:.1f} s")
    print(f"{'ANN':<26}{'search p50':>11}{'recall@10':>10}{'key p50':>9}{'key p95':>9}{'new-feature p50':>17}")
    for name in ("local", "milvus"):
        row = vec[name]
        print(f"{name + ' (' + row['backend'] + ')':<26}{row['search'][0]:>9.2f}ms{row['recall']:>10.4f}"
              f"{row['hold'][0]:>7.2f}ms{row['hold'][1]:>7.2f}ms{row['fresh'][0]:>15.2f}ms")
    print(f"keypress milvus / local (p50): {vec['milvus']['hold'][0] / vec['local']['hold'][0]:.1f}x")
    print(f"milvus-lite, 100 queries in one call: {vec['milvus_batch_ms']:.2f} ms per query")


def main() -> None:
    """Generate (or reuse) the images, run both indexers, then both ANNs, and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="images (a multiple of --step; default 100,000)")
    parser.add_argument("--step", type=int, default=10_000, help="new images per round (and Ray shard size)")
    parser.add_argument("--data", type=Path, default=Path("/work/scale_out_data"),
                        help="where the generated images are cached (and the run's indexes are built)")
    parser.add_argument("--deadline", default=None, metavar="HH:MM",
                        help="UTC time the whole run must end by: no new round starts that would not end"
                             " --reserve minutes before it (the last complete round is reported)")
    parser.add_argument("--reserve", type=float, default=15.0,
                        help="minutes kept for the import and the vectors part (a run that stops short of -n"
                             " then adds the synthetic -n-row vectors part, which this does not cover)")
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--generate-only", action="store_true", help="only make sure the images exist")
    parser.add_argument("--vectors-only", action="store_true",
                        help="only the vectors part, on -n synthetic rows of --dim (what a run whose embedding"
                             " stopped short of -n adds at the end)")
    parser.add_argument("--dim", type=int, default=512, help="synthetic vectors' dimension (default 512)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/memetui-bench"), help="synthetic index cache")
    args = parser.parse_args()
    if args.step % PER_FOLDER or args.n % args.step:
        raise SystemExit(f"--step must be a multiple of {PER_FOLDER} and -n a multiple of --step")
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.vectors_only:
        print(f"machine: {os.cpu_count()} CPUs, niceness {os.nice(0)}, load average {os.getloadavg()[0]:.1f} at start"
              f" ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)", flush=True)
        synthetic_vectors(args)
        return
    images = image_folder(args.n, args.data)
    if args.generate_only:
        return
    deadline = float("inf")
    if args.deadline:
        hours, minutes = map(int, args.deadline.split(":"))
        now = time.time()
        deadline = now - now % 86_400 + hours * 3600 + minutes * 60
        deadline += 86_400 if deadline < now else 0
    print(f"machine: {os.cpu_count()} CPUs, niceness {os.nice(0)}, load average {os.getloadavg()[0]:.1f} at start"
          f" ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)", flush=True)
    work = args.data / f"run-{args.n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    run = bench_embedding(images, work, args.n, args.step, deadline, args.reserve * 60)
    report_embedding(run)
    from memetui.index.store import IndexStore

    store = IndexStore.open(work / "single-index")
    report_vectors(bench_vectors(store, work / "vectors.db", args.presses), "the single-process index (real rows)")
    store.close()
    if run["rounds"][-1]["rows"] < args.n:
        synthetic_vectors(args)
    loads = ", ".join(f"{r['load']:.1f}" for r in run["rounds"])
    print(f"\nwhole run {(time.perf_counter() - started) / 60:.1f} min; 1-min load average after each round:"
          f" {loads}; after the vectors part {os.getloadavg()[0]:.1f}")
    shutil.rmtree(work, ignore_errors=True)


def synthetic_vectors(args) -> None:
    """The vectors part at -n rows on bench_search.py's synthetic clustered vectors (HNSW graph cached in --cache)."""
    from bench_search import cached_store

    store = cached_store(args.n, args.dim, args.cache)
    what = f"synthetic clustered unit vectors (bench_search.py), cached in {args.cache}"
    report_vectors(bench_vectors(store, args.cache / f"milvus-{args.n}x{args.dim}.db", args.presses), what)
    store.close()


if __name__ == "__main__":
    main()
