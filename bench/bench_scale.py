"""Benchmark at 1M x 1152: import, kill + resume, ANN, keypress, cold start, `memetui search`, SAE at 65,536 latents.

    nice -n 10 python bench/bench_scale.py --data /work/scale_data        # everything, once
    nice -n 10 python bench/bench_scale.py --data /work/scale_data --only keypress,cold
    python bench/bench_scale.py --data /tmp/s --rows 60000 --shards 3     # a quick dry run
    python bench/bench_scale.py --only import,features-cli --skip-resume  # `memetui features` itself, timed

Data (generated once into --data, never into the repository): clip-retrieval output,
img_emb/img_emb_KK.npy (float16 unit rows) + metadata/metadata_KK.parquet (image_path that is not
on this machine, url, caption, width, height, similarity). Shards come from three generators in
turn: power-law clusters sharing a mean (bench_search.py's CLIP-like shape), a sparse Zipf
dictionary (memetui.sae.synthetic), and a Gaussian mixture with Zipf-sized clusters. The index
claims a 1152-d model saved under DATA/models (random weights) so `memetui search` can embed text.
The keypress, cold start, features and train-sae parts use a 65,536-latent, k 64 SAE saved once
in DATA/full/sae (keypress65k). Every heavy step runs in a child process, whose peak RSS and CPU
time are read from getrusage: on a shared machine wall time includes waiting for a core, so CPU
times are reported beside it. Results merge into DATA/results.json; ANN candidates are compared
by bench/bench_ann_scale.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from memetui.index.ivf_tuning import exact_top  # noqa: E402  (bench_ann_scale.py imports it from here)
MODEL = "scale-clip-1152"
CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter(); marks = {{}}
{body}
used = resource.getrusage(resource.RUSAGE_SELF)
print("RESULT " + json.dumps({{"wall": time.perf_counter() - t0, "cpu_s": used.ru_utime + used.ru_stime,
                              "rss_gb": used.ru_maxrss / 2**20, **marks}}))
"""
IMPORT_BODY = """
import os, signal
from memetui.index.importer import ImportOptions, Importer
from memetui.index.importers import open_source
import memetui.index.ann
memetui.index.ann.IVF_MIN_ROWS = min(memetui.index.ann.IVF_MIN_ROWS, {ivf_min})
def progress(stage, done, total):
    marks.setdefault(stage + "_start", time.perf_counter() - t0)
    if stage == "import" and {kill_at} and done >= {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
summary = Importer(open_source({src!r}), {out!r}, {model!r}, {ckpt!r},
                   ImportOptions(trust_model=True, build_ann={ann}), progress).run()
marks["resumed_at"] = summary.resumed_at; marks["backend"] = summary.backend
"""


def child(body: str, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run `body` in a fresh Python; return its RESULT dict (wall, rss_gb, marks) or {'rc': code}."""
    code = CHILD.format(repo=str(REPO), body=body)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"rc": "timeout", "timeout_s": timeout}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"rc": done.returncode, "stderr": done.stderr[-600:]}


# -- data ------------------------------------------------------------------------------------------
def gen_clustered(n: int, dim: int, rng, rank: int = 192) -> np.ndarray:
    """Power-law clusters around a shared mean (random pairs cos ~0.5, neighbours ~0.9).

    Centres use the full power-law spectrum; within-cluster noise its top `rank` directions plus
    a little isotropic noise (full-rank noise costs a 1152 x 1152 product per row).
    """
    scale = (np.arange(1, dim + 1) ** -0.5).astype(np.float32)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)).astype(np.float32))[0]
    centres = (rng.standard_normal((2000, dim)).astype(np.float32) * scale) @ basis.T
    noise = (rng.standard_normal((n, rank)).astype(np.float32) * scale[:rank]) @ basis[:, :rank].T
    x = centres[rng.integers(0, 2000, n)] + 0.5 * noise + 0.01 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mean = rng.standard_normal(dim).astype(np.float32)
    return x + mean / np.linalg.norm(mean)


def gen_dictionary(n: int, dim: int, rng, atoms: int = 8192, active: int = 16) -> np.ndarray:
    """Sparse codes over a Zipf-weighted dictionary (16 of 8,192 atoms per row) plus a shared mean
    (the shape memetui.sae.synthetic makes, with numpy sampling: its multinomial is slow at 1M rows)."""
    import torch
    import torch.nn.functional as F

    dictionary = F.normalize(torch.from_numpy(rng.standard_normal((atoms, dim)).astype(np.float32)), dim=1)
    p = np.arange(1, atoms + 1) ** -0.5
    idx = torch.from_numpy(rng.choice(atoms, (n, active), p=p / p.sum()))
    mags = torch.from_numpy(rng.exponential(0.7071, (n, active)).astype(np.float32))
    mean = F.normalize(torch.from_numpy(rng.standard_normal(dim).astype(np.float32)), dim=0) * 3.0
    x = F.embedding_bag(idx, dictionary, per_sample_weights=mags, mode="sum") + mean
    return (x + 0.05 * torch.randn(n, dim)).numpy()


def gen_mixture(n: int, dim: int, rng) -> np.ndarray:
    """Gaussian mixture, 500 clusters with Zipf sizes and per-cluster spreads."""
    centres = rng.standard_normal((500, dim)).astype(np.float32)
    sizes = 1.0 / np.arange(1, 501)
    which = rng.choice(500, n, p=sizes / sizes.sum())
    spread = rng.uniform(0.3, 1.2, 500).astype(np.float32)
    return centres[which] + spread[which, None] * rng.standard_normal((n, dim)).astype(np.float32)


GENERATORS = [("clustered", gen_clustered), ("dictionary", gen_dictionary), ("mixture", gen_mixture)]


def generate(folder: Path, rows: int, dim: int, shards: int) -> None:
    """Write the clip-retrieval shards (skipped when they exist)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (folder / "img_emb").is_dir() and len(list((folder / "img_emb").glob("*.npy"))) == shards:
        return
    (folder / "img_emb").mkdir(parents=True, exist_ok=True)
    (folder / "metadata").mkdir(exist_ok=True)
    per = rows // shards
    for k in range(shards):
        name, fn = GENERATORS[k % len(GENERATORS)]
        rng = np.random.default_rng(k)
        x = np.asarray(fn(per, dim, rng), dtype=np.float32)
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
        np.save(folder / "img_emb" / f"img_emb_{k:02d}.npy", x)
        ids = np.arange(k * per, (k + 1) * per)
        pq.write_table(pa.table({
            "image_path": [f"/data/scrape/{i:08d}.jpg" for i in ids],
            "caption": [f"{name} item {i}" for i in ids],
            "url": [f"https://img.example.net/{i:08d}.jpg" for i in ids],
            "width": rng.integers(200, 2000, per), "height": rng.integers(200, 2000, per),
            "similarity": rng.uniform(0.2, 0.4, per).astype(np.float32),
        }), folder / "metadata" / f"metadata_{k:02d}.parquet")
        print(f"  shard {k}: {per} rows from {name}", flush=True)


def make_model(folder: Path, dim: int) -> Path:
    """A 1152-d open_clip config + random weights (text tower small) standing in for the real model."""
    checkpoint = folder / f"{MODEL}.safetensors"
    if checkpoint.is_file():
        return checkpoint
    import open_clip
    import torch
    from safetensors.torch import save_file

    config = {"embed_dim": dim, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
              "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MODEL}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{MODEL}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(MODEL)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, checkpoint)
    return checkpoint


# -- measurements ----------------------------------------------------------------------------------
def digest_index(path: Path) -> tuple[str, str]:
    """(sha256 of the embeddings file's bytes, sha256 of the item rows incl. metadata)."""
    import sqlite3

    emb = hashlib.sha256()
    with open(path / "embeddings.f16.npy", "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            emb.update(block)
    rows = hashlib.sha256()
    db = sqlite3.connect(f"file:{path / 'items.sqlite'}?mode=ro", uri=True)
    for row in db.execute("SELECT items.id, path, sha256, status, embedding, url, caption, meta"
                          " FROM items LEFT JOIN item_meta USING (id) ORDER BY items.id"):
        rows.update(repr(row).encode())
    return emb.hexdigest(), rows.hexdigest()


def steered(emb: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Image + 0.5 x another image + noise, as a stepped query looks."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(emb), (2, count))
    noise = 0.05 * rng.standard_normal((count, emb.shape[1])).astype(np.float32)
    return emb[np.sort(a)].astype(np.float32)[np.argsort(np.argsort(a))] + 0.5 * emb[b].astype(np.float32) + noise


def ann_figures(index: Path, queries: int) -> dict:
    """IVF-PQ bytes, recall@10 vs exact on steered queries and p50 per (nprobe, rerank), each beside
    the search as it was before 2026-12-02 (faiss's own choice of fast-scan loop, every candidate
    rescored; on a second copy of the index), paired query by query in alternating order. torch is imported first, as in the app: the exact rerank
    widens fp16 rows with it (`memetui search` without torch widens with numpy, ~2 ms more per
    1,000 candidates)."""
    import torch

    torch.set_num_threads(1)
    from memetui.index.ann import AnnSearcher
    from memetui.index.ivf import IVF_FILE, IvfPqSearcher, load_ivfpq
    from memetui.index.store import IndexStore

    store = IndexStore.open(index)
    ann = AnnSearcher(store)
    qs = steered(store.embeddings, queries)
    truth = exact_top(store.embeddings, qs)
    out = {"backend": ann.backend, "bytes": (index / IVF_FILE).stat().st_size, "sweep": {}}
    default = ann._ivf.params  # what the app and CLI search this index with
    out["default"] = f"nprobe {default.nprobe}, rerank {default.rerank}, scan {default.scan}"
    baseline_index = load_ivfpq(index / IVF_FILE, store.dim, store.count)
    for nprobe, rerank in ((default.nprobe // 2, default.rerank // 2), (default.nprobe, default.rerank)):
        params = dataclasses.replace(default, nprobe=nprobe, rerank=rerank)
        ours = IvfPqSearcher(ann._ivf.index, store.embeddings, params)
        previous = IvfPqSearcher(baseline_index, store.embeddings, dataclasses.replace(params, scan=0, settle=0))
        times = {ours: [], previous: []}
        recall = {ours: [], previous: []}
        for i, (q, t) in enumerate(zip(qs, truth)):
            for searcher in (ours, previous) if i % 2 else (previous, ours):
                started = time.perf_counter()
                rows, _ = searcher.search(q, 10)
                times[searcher].append((time.perf_counter() - started) * 1000)
                recall[searcher].append(len(set(rows.tolist()) & set(t.tolist())) / 10)
        ratio = statistics.median(np.array(times[ours][1:]) / np.array(times[previous][1:]))
        row = {"p50_ms": statistics.median(times[ours][1:]), "recall@10": float(np.mean(recall[ours])),
               "previous_p50_ms": statistics.median(times[previous][1:]),
               "previous_recall@10": float(np.mean(recall[previous])), "paired_ratio": ratio}
        out["sweep"][f"nprobe {nprobe}, rerank {rerank}"] = row
        print(f"  nprobe {nprobe:3d} rerank {rerank}: p50 {row['p50_ms']:.2f} ms, recall@10 {row['recall@10']:.4f}; "
              f"before (faiss's own scan loop, all rescored) {row['previous_p50_ms']:.2f} ms, recall@10 "
              f"{row['previous_recall@10']:.4f}; paired {ratio:.3f}x", flush=True)
    return out


KEYPRESS_SAE = "keypress65k"


def ensure_keypress_sae(index: Path, latents: int = 65_536, k: int = 64) -> str:
    """A TopKSAE of `latents` x d (random decoder directions through the data, b_pre/s fitted on
    4,096 rows) saved in INDEX/sae, so the keypress runs the Session's own SAE path; returns its name."""
    import torch

    from memetui.index.store import IndexStore
    from memetui.sae.model import TopKSAE

    store = IndexStore.open(index)
    if KEYPRESS_SAE in store.sae_names():
        return KEYPRESS_SAE
    sample = torch.from_numpy(np.asarray(store.embeddings[:: max(1, store.count // 4096)][:4096], np.float32))
    sae = TopKSAE(store.dim, latents, k, meta={"model": {"name": store.model.name, "sha256": store.model.sha256}})
    sae.init_from_data_(sample, pre_bias="mean")
    store.sae_dir.mkdir(exist_ok=True)
    sae.save(store.sae_dir / KEYPRESS_SAE)
    return KEYPRESS_SAE


def keypress_figures(index: Path, repeats: int = 100, think_s: float = 0.3) -> dict:
    """The app's keypress through the Session: `l`/`h` (step), the results (ANN search, 24 rows)
    and the query's SAE features (top-k of 65,536 latents, the pinned latent's reading), p50/p95.

    Every 10 presses another direction is highlighted (select_direction) and the user takes
    `think_s` before pressing, as in the app; the panel's features of the visible results
    (features.of_rows: a dense encode of 24 rows, prefetched by the app) are timed apart."""
    from memetui.session import Session

    name = ensure_keypress_sae(index)
    started = time.perf_counter()
    session = Session.open(index, sae=name, device="cpu")
    opened_s = time.perf_counter() - started
    session.add_image(123)
    session.results(24)
    directions = [a.id for a in session.active_directions(64)]
    presses, cpus, of_rows, codes = [], [], [], []
    for i in range(repeats + 5):
        if i % 10 == 0:
            ref = session.select_direction(directions[(i // 10) % len(directions)])
            time.sleep(think_s)
        t0, c0 = time.perf_counter(), time.thread_time()
        session.step(1 if i % 3 else -1)
        page = session.results(24)
        t1 = time.perf_counter()
        session.active_directions(12)
        session.features.pinned(ref, session.query)
        t2, c2 = time.perf_counter(), time.thread_time()
        session.features.of_rows("sae", [r.row for r in page.results[:24]])
        t3 = time.perf_counter()
        if i >= 5:
            presses.append((t2 - t0) * 1000)
            cpus.append((c2 - c0) * 1000)
            codes.append((t2 - t1) * 1000)
            of_rows.append((t3 - t2) * 1000)
    out = {"sae": name, "latents": session.directions.sae.n_latents, "k": session.directions.sae.k,
           "session_open_s": opened_s, "backend": session.searcher.ann.backend,
           "keypress_p50_ms": statistics.median(presses), "keypress_p95_ms": float(np.percentile(presses, 95)),
           "keypress_cpu_p50_ms": statistics.median(cpus),
           "sae_code_p50_ms": statistics.median(codes), "results_of_rows_p50_ms": statistics.median(of_rows),
           "loadavg": os.getloadavg()[0]}
    session.close()
    return out


def features_figures(index: Path, rows: int = 8_192) -> dict:
    """Rows/s of `memetui features`' encode (memetui.sae.export.feature_stats, 65,536 latents) and
    of the app's feature gallery (memetui.session.feature_stats) over `rows` rows, extrapolated
    to the rows each covers (features: the validation split, ~10 %; the gallery: every row)."""
    from memetui.index.store import IndexStore
    from memetui.sae import export
    from memetui.sae.model import load_for_index
    from memetui.sae.train import split_rows
    from memetui.session import feature_stats
    from memetui.steer.sae_directions import SAEDirections

    store = IndexStore.open(index)
    sae = load_for_index(ensure_keypress_sae(index), store)
    validation = len(split_rows(np.flatnonzero(store.live_mask()), 0.1)[1])

    def cpu() -> float:
        used = resource.getrusage(resource.RUSAGE_SELF)
        return used.ru_utime + used.ru_stime

    started, cpu0 = time.perf_counter(), cpu()
    export.feature_stats(sae, store.embeddings, np.arange(rows))
    cli_rate, cli_cpu = rows / (time.perf_counter() - started), rows / (cpu() - cpu0)
    directions = SAEDirections.from_sae(sae)
    started, cpu0 = time.perf_counter(), cpu()
    feature_stats.feature_stats(directions, store.embeddings[:rows])
    gallery_rate, gallery_cpu = rows / (time.perf_counter() - started), rows / (cpu() - cpu0)
    cores = len(os.sched_getaffinity(0))
    return {"rows": rows, "features_rows_per_s": cli_rate, "features_rows_per_cpu_s": cli_cpu,
            "features_rows": validation, "features_minutes_extrapolated": validation / cli_rate / 60,
            "features_minutes_on_idle_cores": validation / (cli_cpu * cores) / 60,
            "gallery_rows_per_s": gallery_rate, "gallery_rows_per_cpu_s": gallery_cpu,
            "gallery_minutes_extrapolated": store.count / gallery_rate / 60,
            "gallery_minutes_on_idle_cores": store.count / (gallery_cpu * cores) / 60, "loadavg": os.getloadavg()[0]}


COLD_BODY = """
import asyncio, os
from memetui.commands.app_cmd import open_session
from memetui.tui.app import MemeApp
def cpu():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime
session, notices = open_session({index!r}, None, {sae!r})  # as `memetui INDEX` opens it: the SAE loads later
marks["session_open_s"], marks["session_open_cpu_s"] = time.perf_counter() - t0, cpu()
app = MemeApp(session, graphics="halfblock", restore_history=False, device_name=None, notices=notices)
async def first_results():
    async with app.run_test(size=(140, 45)) as pilot:
        while app.results_shown < 1:
            await pilot.pause(0.005)
        marks["first_results_s"], marks["first_results_cpu_s"] = time.perf_counter() - t0, cpu()
        marks["torch_before_first_results"] = "torch" in sys.modules
        marks["loadavg"] = os.getloadavg()[0]
        while (session.sae_pending is not None or (app.panel.mode == "sae" and not app.panel.directions)) \
                and time.perf_counter() - t0 < 1200:
            await pilot.pause(0.02)
        marks["features_shown_s"], marks["features_shown_cpu_s"] = time.perf_counter() - t0, cpu()
        marks["notices"] = notices
asyncio.run(first_results())
"""
TRAIN_BODY = """
import os, statistics
from memetui.sae.train import TrainConfig, Trainer, open_training_data
data = open_training_data({index!r})
marks["data_s"] = time.perf_counter() - t0
cfg = TrainConfig(n_latents={latents}, k={k}, batch_size={batch}, lr={lr})
trainer = Trainer(data, cfg)
marks["init_s"] = time.perf_counter() - t0 - marks["data_s"]
marks["lr_candidates"] = len(trainer.runs)
def cpu():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime
steps, cpus = [], []
for _ in range({steps}):
    started, cpu0 = time.perf_counter(), cpu()
    trainer.step()
    steps.append(time.perf_counter() - started)
    cpus.append(cpu() - cpu0)
marks["step_s"], marks["step_cpu_s"] = steps, cpus
marks["samples_per_s"] = {batch} / statistics.median(steps[1:] or steps)
marks["samples_per_s_on_idle_cores"] = {batch} * len(os.sched_getaffinity(0)) / statistics.median(cpus[1:] or cpus)
marks["plan_steps"], marks["eval_every"] = trainer.plan.total, trainer.plan.eval_every
marks["loadavg"] = os.getloadavg()[0]
"""


def cold_start_figures(index: Path, env: dict, sae: str | None = KEYPRESS_SAE) -> dict:
    """A fresh Python: imports, the app's Session (the SAE deferred, as `memetui INDEX` opens it) and the
    Textual app (headless) until its first results are on screen, then until the feature panel is
    filled; wall and CPU seconds from the child's start at each, peak RSS."""
    started = time.perf_counter()
    out = child(COLD_BODY.format(index=str(index), sae=sae if sae else False), env)
    out["process_wall_s"] = time.perf_counter() - started
    return out


def train_sae_figures(index: Path, env: dict, steps: int = 4, lr: float | None = 5e-3, latents: int = 65_536,
                      k: int = 64, batch: int = 1024, timeout: float = 1800) -> dict:
    """`train-sae --latents 65536 --k 64`'s training steps on the index (the engine's Trainer, no
    evaluation pass): seconds per step, samples/s, peak RSS; lr None = the learning-rate search."""
    out = child(TRAIN_BODY.format(index=str(index), latents=latents, k=k, batch=batch, lr=lr, steps=steps),
                env, timeout=timeout)
    out.update(steps=steps, batch=batch, lr=lr)
    return out


def cli_wall(args: list[str], env: dict) -> tuple[float, int, str, float]:
    """Wall seconds, exit code, stderr tail and CPU seconds (user + sys) of one `memetui` call.

    Bytecode is written as an installed package's is (this sandbox sets PYTHONDONTWRITEBYTECODE,
    which recompiles ~90 modules per call)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child_env = {k: v for k, v in {**os.environ, **env}.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-m", "memetui.cli", *args], capture_output=True, text=True, env=child_env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, done.returncode, done.stderr[-300:], cpu


def search_cli_figures(index: Path, env: dict, cache: Path) -> dict:
    """`memetui search cat` with an empty text cache, then 5 repeats (cache hits)."""
    import shutil

    query = ["search", "cat", "--index", str(index), "-k", "10"]
    shutil.rmtree(cache / "text", ignore_errors=True)  # only the text embeddings: PCA's cache stays
    first = cli_wall(query, env)
    repeats = [cli_wall(query, env) for _ in range(5)]
    return {"first_s": first[0], "first_cpu_s": first[3], "first_rc": first[1], "stderr": first[2],
            "repeat_median_s": statistics.median(r[0] for r in repeats), "repeat_max_s": max(r[0] for r in repeats),
            "repeat_median_cpu_s": statistics.median(r[3] for r in repeats), "loadavg": os.getloadavg()[0]}


def features_cli_figures(index: Path, env: dict, out: Path) -> dict:
    """`memetui features` itself on the index with the 65,536-latent SAE: wall, CPU and peak RSS (children)."""
    import shutil

    ensure_keypress_sae(index)
    shutil.rmtree(out, ignore_errors=True)
    wall, rc, stderr, cpu = cli_wall(["features", str(index), "--sae", KEYPRESS_SAE, "--out", str(out)], env)
    return {"wall_min": wall / 60, "cpu_min": cpu / 60, "rc": rc, "stderr": stderr,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
            "pages": len(list(out.glob("*.html"))), "loadavg": os.getloadavg()[0]}


PARTS = ("import", "ann", "keypress", "features", "features-cli", "cold", "search", "train")


def main() -> None:
    """Run the measurements asked (default: every one) and merge them into DATA/results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/scale_data"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sae-timeout", type=float, default=1800)
    parser.add_argument("--ivf-min", type=int, default=250_000, help="IVF-PQ from this many rows (dry runs: lower)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--skip-resume", action="store_true", help="import once, without the killed + resumed run")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    data = args.data
    results_file = data / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    src, models = data / "clip_retrieval", data / "models"
    env = {"MEMETUI_MODELS": str(models), "MEMETUI_CACHE_DIR": str(data / "cache"), "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)

    def save(key: str, value) -> None:
        results[key] = value
        print(f"{key}:", json.dumps(value), flush=True)
        results_file.write_text(json.dumps(results, indent=2))

    if "import" in parts:
        started = time.perf_counter()
        generate(src, args.rows, args.dim, args.shards)
        checkpoint = make_model(models, args.dim)
        save("generate_s", time.perf_counter() - started)

        def import_into(out: Path, kill_at: int = 0, ann: bool = True) -> dict:
            body = IMPORT_BODY.format(src=str(src), out=str(out), model=MODEL, ckpt=str(checkpoint), kill_at=kill_at,
                                      ann=ann, ivf_min=args.ivf_min)
            return child(body, env)

        import shutil

        for name in ("full", "resumed"):
            shutil.rmtree(data / name, ignore_errors=True)
        save("import", import_into(data / "full"))
    if "import" in parts and not args.skip_resume:
        save("import_killed", import_into(data / "resumed", kill_at=args.rows // 2, ann=False))
        save("import_resumed", import_into(data / "resumed", ann=False))
        full, resumed = digest_index(data / "full"), digest_index(data / "resumed")
        save("resume_identical", {"embeddings": full[0] == resumed[0], "rows": full[1] == resumed[1]})
        shutil.rmtree(data / "resumed", ignore_errors=True)
    index = data / "full"
    if "ann" in parts:
        save("ann", ann_figures(index, args.queries))
    if "keypress" in parts:
        save("keypress", keypress_figures(index))
    if "features" in parts:
        save("features", features_figures(index))
    if "features-cli" in parts:
        save("features_cli", features_cli_figures(index, env, data / "features_pages"))
    if "cold" in parts:
        ensure_keypress_sae(index)
        save("cold_start", {"with_sae_65536": cold_start_figures(index, env),  # SAE mode first: no PCA at start
                            "without_sae_first_open": cold_start_figures(index, env, None),  # computes PCA, caches it
                            "without_sae": cold_start_figures(index, env, None)})
    if "search" in parts:
        save("search_cli", search_cli_figures(index, env, data / "cache"))  # DATA/cache/text emptied first
    if "train" in parts:
        save("train_sae", train_sae_figures(index, env, timeout=args.sae_timeout))


if __name__ == "__main__":
    main()
