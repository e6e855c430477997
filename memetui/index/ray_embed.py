"""Distributed embedding on Ray Data: list a folder, embed it with one CLIP actor per GPU (or CPU slot), write shards.

The shards are clip-retrieval's layout, which `memetui import` reads::

    SHARDS/img_emb/img_emb_K.npy          [n, dim] float16 unit rows
    SHARDS/metadata/metadata_K.parquet    image_path (absolute, symlinks kept as given), sha256,
                                          width, height; row i = row i of the npy

Shard K holds the files `K·shard_rows … (K+1)·shard_rows - 1` of the sorted listing, less
unreadable images and contents already in an earlier shard. Its parquet records a hash of that
plan (paths, sizes, mtimes); a shard whose files exist and whose hash matches is skipped, so a
killed job resumes where it stopped and ends with the same shards. Each file is written
atomically, the parquet first: a shard counts as written only when both files agree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_path
from ..errors import RemoteIndexError, UsageError
from ..extras import require
from .scan import scan_folder

PLAN_KEY = b"memetui_plan"
"""Parquet schema metadata key holding the shard's plan hash."""
ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): 'embed' (images), then 'shard' (shards written) after each shard."""


@dataclass
class RayEmbedOptions:
    """How to embed a folder on Ray."""

    address: str | None = None
    """Ray cluster address ('ray://HOST:10001', 'HOST:6379', 'auto'); None starts a local Ray."""
    shard_rows: int = 10_000
    """Files per shard (the unit a killed job resumes from)."""
    batch_size: int = 64
    """Images per map_batches call on an actor."""
    actors: int | None = None
    """Embedding actors; default one per GPU in the cluster, else one per CPU slot."""
    device: str | None = None
    """Device inside each actor (default cuda when the actor holds a GPU, else cpu)."""
    temp_dir: str | None = None
    """Ray's session folder when this call starts a local Ray (default: the system temp folder)."""

    def __post_init__(self):
        if self.shard_rows < 1 or self.batch_size < 1 or (self.actors is not None and self.actors < 1):
            raise UsageError("shard rows, batch size and actors must be positive")


@dataclass
class RayEmbedSummary:
    """What an embedding job did."""

    files: int = 0
    shards: int = 0
    written: list[int] = field(default_factory=list)
    """Shards embedded by this run (the others were already written)."""
    rows: int = 0
    """Rows in the written shards."""
    errors: int = 0
    """Files that could not be read as images (left out of the shards)."""
    duplicates: int = 0
    """Files whose content was already in an earlier row (left out)."""
    actors: int = 0
    actor_seconds: float = 0.0
    """Seconds the actors spent on their batches (decode, hash, embed), summed over actors."""

    def line(self) -> str:
        """One-line human summary."""
        return (f"{self.files} files in {self.shards} shards: {len(self.written)} embedded"
                f" ({self.rows} rows, {self.errors} errors, {self.duplicates} duplicates) on {self.actors} actors,"
                f" {self.shards - len(self.written)} already written")


def shard_paths(shards: Path, k: int, width: int) -> tuple[Path, Path]:
    """(npy, parquet) of shard `k`, K zero-padded to `width` digits."""
    name = f"{k:0{width}d}"
    return shards / "img_emb" / f"img_emb_{name}.npy", shards / "metadata" / f"metadata_{name}.parquet"


def plan_hash(files: list[tuple[str, Path]]) -> str:
    """Hash of a shard's planned files: relative path, size and mtime of each."""
    digest = hashlib.sha256()
    for rel, path in files:
        try:
            stat = path.stat()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            digest.update(f"{rel}\0gone\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def written_shard(shards: Path, k: int, width: int, expected: str) -> list[str] | None:
    """sha256 column of shard `k` when it is written whole for plan hash `expected`, else None."""
    import pyarrow.parquet as pq

    npy, meta = shard_paths(shards, k, width)
    if not (npy.is_file() and meta.is_file()):
        return None
    try:
        table = pq.read_table(meta)
        if (table.schema.metadata or {}).get(PLAN_KEY, b"").decode() != expected:
            return None
        rows = np.load(npy, mmap_mode="r", allow_pickle=False).shape[0]
    except (OSError, ValueError):
        return None
    return table.column("sha256").to_pylist() if rows == table.num_rows else None


class ShardEmbedder:
    """Ray Data actor: loads one Embedder once, then maps batches of paths to fp16 unit vectors."""

    def __init__(self, model: str, pretrained: str | None, device: str | None, models_env: str, threads: int):
        import torch

        if models_env:
            os.environ["MEMETUI_MODELS"] = models_env
        if threads:
            torch.set_num_threads(threads)
        from ..embed import Embedder

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.embedder = Embedder(model, pretrained, device=device)

    def __call__(self, batch: dict) -> dict:
        """{'path': bytes[n], 'shard'} -> + 'ok', 'sha256', 'width', 'height', 'vector' [n, d] float16, 'seconds'."""
        import time

        import torch

        from ..errors import ImageLoadError
        from ..image_files import load_image
        from .scan import safe_hash

        started = time.perf_counter()
        n, dim = len(batch["path"]), self.embedder.dim
        ok, sizes, shas, pixels = np.zeros(n, bool), np.zeros((n, 2), np.int64), [""] * n, []
        for i, raw in enumerate(batch["path"]):
            path = os.fsdecode(bytes(raw))
            try:
                image = load_image(path, max_side=self.embedder.input_size * 2)
                sha = safe_hash(Path(path))
            except ImageLoadError:
                continue
            if sha is None:
                continue
            ok[i], sizes[i], shas[i] = True, image.size, sha
            pixels.append(self.embedder.preprocess(image))
        vectors = np.zeros((n, dim), np.float16)
        if pixels:
            vectors[ok] = self.embedder.embed_pixels(torch.stack(pixels)).astype(np.float16)
        return {**batch, "ok": ok, "sha256": np.array(shas, dtype=object), "width": sizes[:, 0],
                "height": sizes[:, 1], "vector": vectors, "seconds": np.full(n, (time.perf_counter() - started) / n)}


def start_ray(address: str | None, temp_dir: str | None = None) -> bool:
    """Connect to `address` (or start a local Ray) unless this process already has; True if this call did."""
    ray = require("ray", "--ray")
    require("ray.data", "--ray")
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if not address:
        kwargs["_temp_dir"] = temp_dir or tempfile.mkdtemp(prefix="ray")
        # a local Ray's actors are the job itself: Ray would start them 15 niceness steps below this
        # process, so on a busy machine they starve while the driver waits (override by setting it)
        os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        ray.init(address=address or None, **kwargs)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError from a bad address
        reason = " ".join(str(exc).split())[:200]
        raise RemoteIndexError(f"cannot start or reach Ray{' at ' + address if address else ''}: {reason}") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-job INFO lines on the CLI's stderr
    return True


def embed_to_shards(folder: Path, shards: Path, model: str, pretrained: str | None,
                    options: RayEmbedOptions | None = None, progress: ProgressFn | None = None,
                    exclude: Path | None = None) -> RayEmbedSummary:
    """Embed every image under `folder` on Ray into clip-retrieval shards under `shards` (resumable)."""
    options = options or RayEmbedOptions()
    progress = progress or (lambda stage, done, total: None)
    files, _ = scan_folder(folder, exclude=exclude)
    if not files:
        raise UsageError(f"no image files under {folder}")
    plan = [files[lo:lo + options.shard_rows] for lo in range(0, len(files), options.shard_rows)]
    width = len(str(len(plan) - 1))
    hashes = [plan_hash(part) for part in plan]
    done = {k: written_shard(shards, k, width, hashes[k]) for k in range(len(plan))}
    pending = [k for k, shas in done.items() if shas is None]
    summary = RayEmbedSummary(files=len(files), shards=len(plan))
    if not pending:
        return summary
    started = start_ray(options.address, options.temp_dir)
    try:
        _run(folder, shards, model, pretrained, options, plan, width, hashes, done, pending, summary, progress)
    finally:
        if started:
            import ray

            ray.shutdown()
    return summary


def _run(folder, shards, model, pretrained, options, plan, width, hashes, done, pending, summary, progress):
    """Stream the pending shards' files through the actors in order; write each shard when complete."""
    import pyarrow as pa
    import ray
    import ray.data


    blocks = [pa.table({"path": [os.fsencode(path) for _, path in plan[k][lo:lo + options.batch_size]],
                        "shard": [k] * len(plan[k][lo:lo + options.batch_size])})
              for k in pending for lo in range(0, len(plan[k]), options.batch_size)]
    total = sum(block.num_rows for block in blocks)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    actors = min(options.actors or max(1, gpus or int(resources.get("CPU", 1))), len(blocks))
    summary.actors = actors
    context = ray.data.DataContext.get_current()
    saved = context.execution_options.preserve_order, context.enable_progress_bars
    context.execution_options.preserve_order, context.enable_progress_bars = True, False
    try:
        # one block per batch, never across shards: a resumed job embeds each row in the same batch as before
        dataset = ray.data.from_arrow(blocks).map_batches(
            ShardEmbedder, batch_size=None, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
            fn_constructor_kwargs={"model": model, "pretrained": pretrained, "device": options.device,
                                   "models_env": os.environ.get("MEMETUI_MODELS", ""), "threads": 0 if gpus else 1})
        buffers: dict[int, list[dict]] = {k: [] for k in pending}
        received = {k: 0 for k in pending}
        embedded = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for k in np.unique(batch["shard"]).tolist():
                pick = batch["shard"] == k
                buffers[k].append({name: column[pick] for name, column in batch.items()})
                received[k] += int(pick.sum())
                if received[k] == len(plan[k]):
                    seen = set().union(*(set(done[j] or []) for j in range(k)))
                    done[k] = _write_shard(shards, k, width, hashes[k], folder, plan[k], buffers.pop(k), seen, summary)
                    summary.written.append(k)
                    progress("shard", len(summary.written), len(pending))
            embedded += len(batch["shard"])
            summary.actor_seconds += float(batch["seconds"].sum())
            progress("embed", embedded, total)
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved


def _write_shard(shards: Path, k: int, width: int, expected: str, folder: Path, files, parts: list[dict],
                 seen: set[str], summary: RayEmbedSummary) -> list[str]:
    """Write shard `k` (parquet, then npy, each atomically) from its embedded rows; return its sha256 column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    order = {os.fsencode(path): i for i, (_, path) in enumerate(files)}
    rank = np.argsort([order[bytes(p)] for p in merged["path"]], kind="stable")  # plan order, whatever came first
    keep, shas = [], []
    for i in rank:
        if not merged["ok"][i]:
            summary.errors += 1
        elif merged["sha256"][i] in seen:
            summary.duplicates += 1
        else:
            seen.add(merged["sha256"][i])
            keep.append(i)
            shas.append(str(merged["sha256"][i]))
    keep = np.array(keep, dtype=np.int64)
    rel = {os.fsencode(path): name for name, path in files}
    table = pa.table({
        "image_path": [os.path.join(os.path.abspath(folder), rel[bytes(merged["path"][i])])
                       .encode("utf-8", "replace").decode() for i in keep],
        "sha256": shas,
        "width": merged["width"][keep].astype(np.int64),
        "height": merged["height"][keep].astype(np.int64),
    }).replace_schema_metadata({PLAN_KEY: expected.encode()})
    vectors = np.ascontiguousarray(merged["vector"][keep], dtype=np.float16)
    npy, meta = shard_paths(shards, k, width)
    npy.parent.mkdir(parents=True, exist_ok=True)
    meta.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(meta) as tmp:
        pq.write_table(table, tmp)
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as handle:
            np.lib.format.write_array(handle, vectors, version=(1, 0), allow_pickle=False)
    summary.rows += len(keep)
    return shas
