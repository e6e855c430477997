"""Benchmark at 1M x 1152: import, kill + resume, IVF-PQ ANN, keypress path, `memetui search`, SAE at 65,536 latents.

    nice -n 10 python bench/bench_scale.py --data /work/scale_data        # everything, once
    python bench/bench_scale.py --data /tmp/s --rows 60000 --shards 3     # a quick dry run

Data (generated once into --data, never into the repository): clip-retrieval output,
img_emb/img_emb_KK.npy (float16 unit rows) + metadata/metadata_KK.parquet (image_path that is not
on this machine, url, caption, width, height, similarity). Shards come from three generators in
turn: power-law clusters sharing a mean (bench_search.py's CLIP-like shape), a sparse Zipf
dictionary (memetui.sae.synthetic), and a Gaussian mixture with Zipf-sized clusters. The index
claims a 1152-d model saved under DATA/models (random weights) so `memetui search` can embed text.
Every heavy step runs in a child process, whose peak RSS is read from getrusage. Results: DATA/results.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MODEL = "scale-clip-1152"
CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter(); marks = {{}}
{body}
print("RESULT " + json.dumps({{"wall": time.perf_counter() - t0, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, **marks}}))
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


def exact_top(emb: np.ndarray, queries: np.ndarray, k: int = 10, chunk: int = 65_536) -> np.ndarray:
    """[q, k] exact top-k rows by dot product, in chunks of the memmap."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_r = np.zeros((len(queries), k), np.int64)
    for lo in range(0, len(emb), chunk):
        scores = queries @ np.asarray(emb[lo:lo + chunk], dtype=np.float32).T
        s = np.concatenate([best_s, scores], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(lo, lo + scores.shape[1]), scores.shape)], axis=1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return best_r


def ann_figures(index: Path, queries: int) -> dict:
    """IVF-PQ bytes, recall@10 vs exact on steered queries and p50 per (nprobe, rerank)."""
    from memetui.index.ann import AnnSearcher
    from memetui.index.ivf import IVF_FILE, IvfParams, IvfPqSearcher
    from memetui.index.store import IndexStore

    store = IndexStore.open(index)
    ann = AnnSearcher(store)
    qs = steered(store.embeddings, queries)
    truth = exact_top(store.embeddings, qs)
    out = {"backend": ann.backend, "bytes": (index / IVF_FILE).stat().st_size, "sweep": {}}
    for nprobe, rerank in ((16, 100), (32, 200), (32, 500), (64, 500), (128, 1000)):
        searcher = IvfPqSearcher(ann._ivf.index, store.embeddings, IvfParams(nprobe=nprobe, rerank=rerank))
        searcher.search(qs[0], 10)
        times, recall = [], []
        for q, t in zip(qs, truth):
            started = time.perf_counter()
            rows, _ = searcher.search(q, 10)
            times.append((time.perf_counter() - started) * 1000)
            recall.append(len(set(rows.tolist()) & set(t.tolist())) / 10)
        out["sweep"][f"nprobe {nprobe}, rerank {rerank}"] = {"p50_ms": statistics.median(times), "recall@10": float(np.mean(recall))}
        print(f"  nprobe {nprobe:3d} rerank {rerank}: p50 {statistics.median(times):.2f} ms, recall@10 {np.mean(recall):.4f}", flush=True)
    return out


def keypress_figures(index: Path, latents: int = 65_536, k: int = 64, repeats: int = 100) -> dict:
    """step (q + α‖q‖d) + SAE encode (latents, top-k) + ANN search, p50; and encode rows/s for features."""
    import torch

    from memetui.index.ann import AnnSearcher
    from memetui.index.store import IndexStore

    store = IndexStore.open(index)
    ann = AnnSearcher(store)
    dim = store.dim
    gen = torch.Generator().manual_seed(0)
    w_enc = torch.randn(latents, dim, generator=gen) / dim ** 0.5
    w_dec = torch.nn.functional.normalize(torch.randn(latents, dim, generator=gen), dim=1)
    b_enc, b_pre = torch.zeros(latents), torch.from_numpy(np.asarray(store.embeddings[:4096], np.float32).mean(0))
    q = torch.from_numpy(np.asarray(store.embeddings[123], np.float32).copy())
    times = []
    with torch.inference_mode():
        for i in range(repeats + 5):
            started = time.perf_counter()
            q = q + 0.25 * q.norm() * w_dec[i % 97]                      # the step
            pre = torch.relu(w_enc @ ((q / q.norm() - b_pre)) + b_enc)    # SAE encode
            torch.topk(pre, k)
            ann.search(q.numpy(), 24)                                     # the results
            if i >= 5:
                times.append((time.perf_counter() - started) * 1000)
        batch = torch.from_numpy(np.asarray(store.embeddings[:4096], np.float32))
        started = time.perf_counter()
        torch.topk(torch.relu((batch - b_pre) @ w_enc.T + b_enc), k, dim=1)
        rows_per_s = 4096 / (time.perf_counter() - started)
    return {"keypress_p50_ms": statistics.median(times), "keypress_p95_ms": float(np.percentile(times, 95)),
            "encode_rows_per_s": rows_per_s, "features_minutes_extrapolated": store.count / rows_per_s / 60}


def cli_wall(args: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds, exit code and stderr tail of one `memetui` call."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "memetui.cli", *args], capture_output=True, text=True, env={**os.environ, **env})
    return time.perf_counter() - started, done.returncode, done.stderr[-300:]


def main() -> None:
    """Run every measurement once and write DATA/results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/scale_data"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sae-timeout", type=float, default=900)
    parser.add_argument("--ivf-min", type=int, default=250_000, help="IVF-PQ from this many rows (dry runs: lower)")
    args = parser.parse_args()
    data, results = args.data, {}
    src, models = data / "clip_retrieval", data / "models"
    env = {"MEMETUI_MODELS": str(models), "MEMETUI_CACHE_DIR": str(data / "cache"), "HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    started = time.perf_counter()
    generate(src, args.rows, args.dim, args.shards)
    checkpoint = make_model(models, args.dim)
    results["generate_s"] = time.perf_counter() - started
    print(f"data ready ({results['generate_s']:.0f} s)", flush=True)

    def import_into(out: Path, kill_at: int = 0, ann: bool = True) -> dict:
        body = IMPORT_BODY.format(src=str(src), out=str(out), model=MODEL, ckpt=str(checkpoint), kill_at=kill_at, ann=ann,
                                  ivf_min=args.ivf_min)
        return child(body, env)

    import shutil

    for name in ("full", "resumed"):
        shutil.rmtree(data / name, ignore_errors=True)
    results["import"] = import_into(data / "full")
    print("import:", results["import"], flush=True)
    results["import_killed"] = import_into(data / "resumed", kill_at=args.rows // 2, ann=False)
    results["import_resumed"] = import_into(data / "resumed", ann=False)
    full, resumed = digest_index(data / "full"), digest_index(data / "resumed")
    results["resume_identical"] = {"embeddings": full[0] == resumed[0], "rows": full[1] == resumed[1]}
    print("kill + resume:", results["import_killed"].get("rc"), results["import_resumed"], results["resume_identical"], flush=True)
    shutil.rmtree(data / "resumed", ignore_errors=True)

    results["ann"] = ann_figures(data / "full", args.queries)
    results["keypress"] = keypress_figures(data / "full")
    print("keypress:", results["keypress"], flush=True)

    query = ["search", "cat", "--index", str(data / "full"), "-k", "10"]
    shutil.rmtree(data / "cache", ignore_errors=True)
    first = cli_wall(query, env)
    repeats = [cli_wall(query, env)[0] for _ in range(5)]
    results["search_cli"] = {"first_s": first[0], "first_rc": first[1], "repeat_median_s": statistics.median(repeats),
                             "repeat_max_s": max(repeats), "stderr": first[2]}
    print("memetui search:", results["search_cli"], flush=True)

    steps, batch = 4, 1024
    epochs = steps * batch / (0.9 * args.rows)
    sae = child(f"""
from memetui.cli import main
marks["rc"] = main(["train-sae", {str(data / 'full')!r}, "--latents", "65536", "--k", "64", "--epochs", "{epochs:.6f}",
                    "--batch", "{batch}", "--no-labels", "--name", "scale", "--out", {str(data / 'sae')!r}])
""", env, timeout=args.sae_timeout)
    sae["steps"], sae["samples"] = steps, steps * batch
    results["train_sae"] = sae
    print("train-sae:", sae, flush=True)
    (data / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
