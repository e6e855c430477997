"""Import embeddings made elsewhere into a memetui index: streaming, resumable, published atomically.

    OUT/.import/state.json             what is being imported (source files, sizes, model)
    OUT/.import/embeddings.f16.npy     [N, d] preallocated; chunks written in place, fsynced
    OUT/items.sqlite                   items (+ item_meta) and import_progress, one transaction
                                       per chunk committed after that chunk's embeddings are on disk

A killed import re-run with the same source continues after the last committed chunk; rewriting
a chunk that was partly written gives the same bytes, so the result is bit-identical to an
uninterrupted import. Publishing renames the embeddings into place, writes the ANN file and
writes manifest.json last: until then OUT is not an index.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import fsync_dir, write_json_atomic
from ..errors import IndexNotFoundError, ModelMismatchError, UsageError
from .importers import Source, check_vectors
from .lock import LOCK_FILE, WriterLock
from .store import EMBEDDINGS, MANIFEST, IndexStore, Manifest, ModelInfo

STAGING = ".import"
SOURCE_RECORD = "import.json"
"""Kept in the published index: which source it was imported from (a re-run is then a no-op)."""
ProgressFn = Callable[[str, int, int], None]
OPENAI_NAMES = {"RN50": "RN50", "RN101": "RN101", "RN50x4": "RN50x4", "RN50x16": "RN50x16", "RN50x64": "RN50x64",
                "ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16", "ViT-L/14": "ViT-L-14", "ViT-L/14@336px": "ViT-L-14-336"}


def resolve_model(spec: str, pretrained: str | None = None) -> tuple[str, str | None]:
    """(open_clip name, pretrained tag) from `ViT-B/32` (OpenAI), `open_clip:ARCH/TAG` or `ARCH` + --pretrained."""
    if spec.startswith("open_clip:"):
        arch, _, tag = spec[len("open_clip:"):].partition("/")
        if not arch or not (tag or pretrained):
            raise UsageError(f"--model {spec!r}: expected open_clip:ARCH/PRETRAINED")
        return arch, pretrained or tag
    if spec in OPENAI_NAMES:
        return OPENAI_NAMES[spec], pretrained or "openai"
    return spec, pretrained


def model_info(name: str, pretrained: str | None, dim: int) -> ModelInfo:
    """The identity `Embedder(name, pretrained)` would report, without loading the model."""
    import hashlib

    from ..embed import portable_pretrained, resolve_checkpoint
    from ..hashing import sha256_file_cached

    checkpoint = resolve_checkpoint(pretrained)
    sha = sha256_file_cached(checkpoint) if checkpoint else hashlib.sha256(f"{name}:{pretrained}".encode()).hexdigest()
    return ModelInfo(name, portable_pretrained(pretrained, checkpoint), dim, sha)


@dataclass
class ImportOptions:
    """How to import."""

    chunk: int = 16_384
    """Rows per write + committed transaction (bounds memory and the work a kill loses)."""
    trust_model: bool = False
    """Skip re-embedding a sample of local images to check the model claim."""
    verify_rows: int = 32
    """Local images re-embedded to check the model (mean cosine must reach MIN_COSINE)."""
    device: str | None = None
    threads: int | None = None
    """Threads for the ANN build (default: every core)."""
    build_ann: bool = True
    """False publishes without an ANN file (searches are exact until `memetui index` repairs it): benchmarks only."""


MIN_COSINE = 0.99


@dataclass
class ImportSummary:
    """What an import did."""

    rows: int = 0
    local: int = 0
    remote: int = 0
    resumed_at: int = 0
    backend: str = ""
    seconds: float = 0.0
    verified: str = ""

    def line(self) -> str:
        """One-line human summary."""
        resumed = f", resumed at row {self.resumed_at}" if self.resumed_at else ""
        return (f"{self.rows} rows ({self.local} with a local image, {self.remote} remote){resumed}; "
                f"{self.backend} index; {self.verified}; {self.seconds:.1f} s")


class Importer:
    """Imports one Source into one index folder."""

    def __init__(self, source: Source, out: Path, name: str, pretrained: str | None,
                 options: ImportOptions | None = None, progress: ProgressFn | None = None):
        self.source = source
        self.out = Path(out).expanduser()
        self.name, self.pretrained = name, pretrained
        self.options = options or ImportOptions()
        self.progress = progress or (lambda stage, done, total: None)
        self.total = sum(p.rows for p in source.parts)
        self.summary = ImportSummary()

    # -- public ----------------------------------------------------------------------------------
    def run(self) -> ImportSummary:
        """Import (or continue importing) the source, then publish the index."""
        started = time.perf_counter()
        staging = self.out / STAGING
        fingerprint = self._fingerprint()
        if (self.out / MANIFEST).is_file():
            return self._already_imported(fingerprint)
        resuming = (staging / "state.json").is_file()
        if not resuming:
            if self.out.exists() and any(p.name not in (LOCK_FILE, STAGING) for p in self.out.iterdir()):
                raise IndexNotFoundError(f"{self.out} exists, is not empty and is not a memetui index")
            model = self._check_model()  # before anything is written: a refusal leaves no trace
        self.out.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(self.out).acquire()
        try:
            if resuming:
                state = json.loads((staging / "state.json").read_text(encoding="utf-8"))
                if state.get("source") != fingerprint:
                    raise UsageError(f"{self.out} holds an unfinished import of another source: delete it or use another --index")
                model = ModelInfo(**state["model"])
                self.summary.verified = state.get("verified", "")
            else:
                staging.mkdir(exist_ok=True)
                shape = (self.total, self.source.dim)
                np.lib.format.open_memmap(staging / EMBEDDINGS, mode="w+", dtype=np.float16, shape=shape)
                state = {"source": fingerprint, "model": _model_dict(model), "verified": self.summary.verified}
                write_json_atomic(staging / "state.json", state)
            store = IndexStore(self.out, Manifest(model=model, root=str(Path(self.source.root).resolve())), lock)
            if (staging / EMBEDDINGS).is_file() or not (self.out / EMBEDDINGS).is_file():
                self._copy_rows(store, staging / EMBEDDINGS)
            # else a previous run copied every row and renamed the embeddings into place, then failed
            # while publishing (a full disk): only the ANN file and the manifest are left to write
            self._publish(store, staging, fingerprint)
            store.close()
        finally:
            lock.release()
        self.summary.rows = self.total
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    # -- stages ----------------------------------------------------------------------------------
    def _fingerprint(self) -> dict:
        files = []
        for part in self.source.parts:
            for file in part.files:
                stat = Path(file).stat()
                files.append([str(Path(file).resolve()), stat.st_size, stat.st_mtime_ns])
        return {"kind": self.source.kind, "rows": self.total, "dim": self.source.dim, "files": files,
                "model": [self.name, self.pretrained]}

    def _already_imported(self, fingerprint: dict) -> ImportSummary:
        record = self.out / SOURCE_RECORD
        known = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
        if not known or known.get("source") != fingerprint:
            raise UsageError(f"{self.out} is already an index (of another source): use another --index")
        store = IndexStore.open(self.out)
        self.summary.rows = store.count
        self.summary.backend = "up to date"
        self.summary.verified = known.get("verified", "")
        return self.summary

    def _check_model(self) -> ModelInfo:
        """ModelInfo for the claimed model; re-embeds a sample of local images unless trusted."""
        if self.options.trust_model:
            self.summary.verified = "model not checked (--trust-model)"
            return model_info(self.name, self.pretrained, self.source.dim)
        sample = self._local_sample()
        if not sample:
            self.summary.verified = "model not checked (no local images)"
            return model_info(self.name, self.pretrained, self.source.dim)
        from ..embed import Embedder
        from ..errors import ImageLoadError

        embedder = Embedder(self.name, self.pretrained, device=self.options.device)
        if embedder.dim != self.source.dim:
            raise ModelMismatchError(f"--model {self.name} makes {embedder.dim}-d embeddings, the source holds {self.source.dim}-d")
        try:
            fresh = embedder.embed_images([path for path, _ in sample])
        except ImageLoadError as exc:
            raise ModelMismatchError(f"cannot check the model claim: {exc}") from None
        stored = np.stack([v.astype(np.float32) for _, v in sample])
        cosine = float(np.mean(np.sum(fresh * stored, axis=1) / np.linalg.norm(stored, axis=1)))
        if cosine < MIN_COSINE:
            raise ModelMismatchError(
                f"the embeddings are not from {self.name} ({self.pretrained}): mean cosine {cosine:.3f} < {MIN_COSINE} "
                f"over {len(sample)} local images re-embedded (--trust-model imports anyway)"
            )
        self.summary.verified = f"model checked on {len(sample)} local images (mean cosine {cosine:.4f})"
        return embedder.info

    def _local_sample(self, scan_rows: int = 50_000) -> list[tuple[Path, np.ndarray]]:
        found, scanned = [], 0
        for index in range(len(self.source.parts)):
            for chunk in self.source.read(index, 0, 4096):
                for record, vector in zip(chunk.records, chunk.vectors):
                    path = self._local_path(record.path)
                    if path is not None:
                        found.append((path, vector))
                scanned += len(chunk.records)
                if len(found) >= self.options.verify_rows or scanned >= scan_rows:
                    return found[: self.options.verify_rows]
        return found

    def _local_path(self, text: str | None) -> Path | None:
        if not text or "://" in text:
            return None
        path = Path(self.source.root) / text
        return path if path.is_file() else None

    def _copy_rows(self, store: IndexStore, partial: Path) -> None:
        db = store.db
        db.execute("CREATE TABLE IF NOT EXISTS import_progress (part INTEGER PRIMARY KEY, done INTEGER NOT NULL)")
        done = dict(db.execute("SELECT part, done FROM import_progress"))
        self.summary.resumed_at = sum(done.values())
        header = np.load(partial, mmap_mode="r").offset
        row_bytes = self.source.dim * 2
        fd = os.open(partial, os.O_WRONLY)
        try:
            first = 0
            for index, part in enumerate(self.source.parts):
                row = first + done.get(index, 0)
                for chunk in self.source.read(index, done.get(index, 0), self.options.chunk):
                    vectors = check_vectors(chunk.vectors, part.name, row - first)
                    if vectors.shape[1] != self.source.dim:
                        raise UsageError(f"{part.name}: dimension {vectors.shape[1]}, expected {self.source.dim}")
                    os.pwrite(fd, vectors.tobytes(), header + row * row_bytes)
                    os.fsync(fd)  # embeddings on disk before the rows that point at them commit
                    with db:
                        self._insert(db, row, chunk.records, vectors)
                        db.execute("INSERT OR REPLACE INTO import_progress VALUES (?, ?)", (index, row - first + len(vectors)))
                    row += len(vectors)
                    self.progress("import", row, self.total)
                first += part.rows
        finally:
            os.close(fd)

    def _insert(self, db, row: int, records, vectors: np.ndarray) -> None:
        items, metas = [], []
        for offset, record in enumerate(records):
            local = self._local_path(record.path)
            size = local.stat().st_size if local else None
            path = record.path or record.url or ""
            blob = vectors[offset].astype("<f2").tobytes()  # items.sqlite holds every embedding (check.py)
            items.append((row + offset, path, f"imported:{row + offset}", size, "ok" if local else "remote", blob))
            if local:
                self.summary.local += 1
            else:
                self.summary.remote += 1
            if record.url or record.caption or record.meta:
                metas.append((row + offset, record.url, record.caption, record.meta))
        db.executemany("INSERT OR REPLACE INTO items (id, path, sha256, size, status, embedding) VALUES (?, ?, ?, ?, ?, ?)", items)
        db.executemany("INSERT OR REPLACE INTO item_meta (id, url, caption, meta) VALUES (?, ?, ?, ?)", metas)

    def _publish(self, store: IndexStore, staging: Path, fingerprint: dict) -> None:
        from .ann import write_ann

        partial, final = staging / EMBEDDINGS, self.out / EMBEDDINGS
        if partial.is_file():
            with open(partial, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, final)
            fsync_dir(self.out)
        store.manifest.count = self.total
        self.summary.backend = "exact (no ANN file)"
        if self.options.build_ann:
            self.summary.backend = write_ann(store, store.embeddings, self.options.threads, self.progress)
        counts = dict(store.db.execute("SELECT status, COUNT(*) FROM items GROUP BY status"))
        self.summary.local, self.summary.remote = int(counts.get("ok", 0)), int(counts.get("remote", 0))
        write_json_atomic(self.out / SOURCE_RECORD, {"source": fingerprint, "verified": self.summary.verified})
        store.write_manifest()  # the commit point: OUT is an index from here on
        with store.db:
            store.db.execute("DROP TABLE IF EXISTS import_progress")
        shutil.rmtree(staging, ignore_errors=True)


def _model_dict(model: ModelInfo) -> dict:
    return {"name": model.name, "pretrained": model.pretrained, "dim": model.dim, "sha256": model.sha256}
