"""Build or update an index from a folder: scan, hash, embed new content, tombstone the missing.

Resumable: every embedded batch is committed to items.sqlite in one transaction, so a killed
run loses at most one batch; the next run skips what is committed. Then publish.py rebuilds
embeddings.f16.npy and hnsw.bin from the database where they are missing, short or stale,
verifies each, and writes manifest.json last (the snapshot readers see).

One writer at a time: the store is opened with the index's writer lock (lock.py). Any failed
write (disk full, I/O error) raises IndexWriteError and leaves the last published index intact.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_path, check_size, write_point
from ..errors import ImageLoadError, IndexNotFoundError, IndexWriteError, UsageError
from ..image_files import load_image
from .ann import HNSW_EF_CONSTRUCTION, HNSW_M
from .db import db_path, db_text, from_db_path
from .milvus_ann import sync_remote
from .ocr_stage import OcrStage, OcrSummary
from .publish import publish
from .scan import Candidate, Decoded, batched, prefetch, safe_hash, scan_folder
from .store import MANIFEST, IndexStore

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is 'scan', 'hash', 'embed', 'ocr' or 'graph'."""


@dataclass
class BuildOptions:
    """How to build an index."""

    batch_size: int = 64
    """Images per embedding batch (and per committed transaction)."""
    workers: int = max(2, min(8, os.cpu_count() or 2))
    """Threads decoding and hashing images while the model embeds the previous batch."""
    thumbnails: bool = True
    """Write 256 px WebP thumbnails to INDEX/thumbs (the TUI draws these instead of originals)."""
    thumb_size: int = 256
    ocr: bool = False
    """Read text in images (memetui.index.ocr_stage) beside the embedding; items lacking it get it.
    Off here (≈ 150 ms per photo-sized image); `memetui index` turns it on unless --no-ocr."""
    hnsw_m: int = HNSW_M
    hnsw_ef_construction: int = HNSW_EF_CONSTRUCTION


@dataclass
class BuildSummary:
    """What a build did."""

    added: int = 0
    unchanged: int = 0
    duplicates: int = 0
    renamed: int = 0
    """Files whose content was indexed under a path that is gone (moved or renamed)."""
    missing: int = 0
    errors: int = 0
    skipped: int = 0
    rows: int = 0
    seconds: float = 0.0
    error_samples: list[tuple[str, str]] = field(default_factory=list)
    ocr: OcrSummary | None = None
    """What the OCR stage did (None with --no-ocr)."""

    def line(self) -> str:
        """One-line human summary."""
        return (
            f"added {self.added}, unchanged {self.unchanged}, duplicates {self.duplicates}, "
            f"renamed {self.renamed}, missing {self.missing}, errors {self.errors}, skipped {self.skipped} "
            f"({self.rows} images in index, {self.seconds:.1f} s)"
        ) + (f"; {self.ocr.line()}" if self.ocr is not None and not self.ocr.unavailable else "")


class IndexBuilder:
    """Builds or incrementally updates one index folder with one embedder."""

    def __init__(self, store: IndexStore, embedder, options: BuildOptions | None = None,
                 progress: ProgressFn | None = None):
        self.store = store
        self.embedder = embedder
        self.options = options or BuildOptions()
        self.progress = progress or (lambda stage, done, total: None)
        self.summary = BuildSummary()
        self._present: set[str] = set()
        self._renamed_from: set[str] = set()
        self._duplicates_in_run: dict[str, list[Candidate]] = {}

    # -- public ----------------------------------------------------------------------------------
    def run(self) -> BuildSummary:
        """Scan the images root, embed what is new, tombstone what is gone, publish the index.

        Raises IndexWriteError (one line) when a write fails; the last published index is intact.
        """
        try:
            return self._run()
        except OSError as exc:
            raise IndexWriteError(write_failure(self.store.path, exc)) from None
        except sqlite3.OperationalError as exc:
            raise IndexWriteError(f"cannot write {self.store.path}: {exc}; the last complete index is intact") from None

    def _run(self) -> BuildSummary:
        started = time.perf_counter()
        files, self.summary.skipped = scan_folder(self.store.root, exclude=self.store.path)
        self._present = {rel for rel, _ in files}
        self.progress("scan", len(files), len(files))
        changed = self._split_unchanged(files)
        to_embed = self._hash_and_link(changed)
        ocr = OcrStage.start(self.store, self.progress) if self.options.ocr else None
        try:
            self._embed_all(to_embed)
            self._mark_missing()
            self._refresh_item_status()
        except BaseException:
            if ocr is not None:
                ocr.cancel()  # what it read is committed; the next build reads the rest
            raise
        if ocr is not None:
            self.summary.ocr = ocr.finish()
        if self.summary.ocr is not None and not self.summary.ocr.unavailable:
            self.store.manifest.ocr = self.summary.ocr.engine
        opts = self.options
        publish(self.store, opts.hnsw_m, opts.hnsw_ef_construction, opts.workers,
                lambda done, total: self.progress("graph", done, total))
        sync_remote(self.store, lambda done, total: self.progress("milvus", done, total))
        self.summary.rows = self.store.count
        self.summary.seconds = time.perf_counter() - started
        self.summary.error_samples = self.store.errors(limit=10)
        return self.summary

    # -- stages ----------------------------------------------------------------------------------
    def _split_unchanged(self, files: list[tuple[str, Path]]) -> list[Candidate]:
        known = {
            from_db_path(rel): (mtime, size, status)
            for rel, mtime, size, status in self.store.db.execute("SELECT path, mtime, size, status FROM files")
        }
        changed = []
        with self._transaction():
            for rel, path in files:
                try:
                    stat = path.stat()
                except OSError as exc:
                    self._record_error(rel, None, 0.0, 0, f"cannot stat: {exc.strerror}")
                    continue
                previous = known.get(rel)
                if previous and previous[0] == stat.st_mtime and previous[1] == stat.st_size and previous[2] != "missing":
                    if previous[2] == "error":
                        self.summary.errors += 1
                    else:
                        self.summary.unchanged += 1
                    continue
                changed.append(Candidate(rel, path, stat.st_mtime, stat.st_size))
        return changed

    def _hash_and_link(self, candidates: list[Candidate]) -> list[Candidate]:
        """Hash changed files; link those whose content is already indexed; return the rest."""
        db = self.store.db
        to_embed, seen = [], {}
        with ThreadPoolExecutor(self.options.workers) as pool, self._transaction():
            hashed = prefetch(pool, lambda c: (c, safe_hash(c.path)), candidates, 4 * self.options.workers)
            for done, (cand, sha) in enumerate(hashed, 1):
                self.progress("hash", done, len(candidates))
                if sha is None:
                    self._record_error(cand.rel, None, cand.mtime, cand.size, "cannot read file")
                    continue
                cand.sha256 = sha
                item = db.execute("SELECT id, path FROM items WHERE sha256 = ?", (sha,)).fetchone()
                if item is not None:
                    self._link_existing(cand, item[0], from_db_path(item[1]))
                elif sha in seen:  # same content twice among new files: embed once
                    seen[sha].append(cand)
                else:
                    seen[sha] = [cand]
                    to_embed.append(cand)
        self._duplicates_in_run = {sha: group[1:] for sha, group in seen.items() if len(group) > 1}
        return to_embed

    def _embed_all(self, candidates: list[Candidate]) -> None:
        import torch

        opts = self.options
        side = max(self.embedder.input_size * 2, opts.thumb_size if opts.thumbnails else 0)
        db = self.store.db
        next_row = db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM items").fetchone()[0]
        done = 0

        def decode(cand: Candidate) -> Decoded:
            """Load, thumbnail and preprocess one image (in a worker thread)."""
            try:
                image = load_image(cand.path, max_side=side)
                if opts.thumbnails:
                    self._write_thumbnail(cand.sha256, image)
                return Decoded(cand, image.size, self.embedder.preprocess(image), None)
            except ImageLoadError as exc:  # the file's name is recorded beside the reason: not in it
                reason = str(exc)
                return Decoded(cand, None, None, reason.removeprefix(f"{cand.path.name}: "))

        with ThreadPoolExecutor(opts.workers) as pool:
            decoded = prefetch(pool, decode, candidates, 2 * opts.batch_size + opts.workers)
            for batch in batched(decoded, opts.batch_size):
                good = [entry for entry in batch if entry.error is None]
                vectors = self.embedder.embed_pixels(torch.stack([e.pixels for e in good])) if good else []
                with self._transaction():  # one transaction per batch: a kill loses at most this batch
                    for entry in batch:
                        if entry.error is not None:  # the same bad bytes under other names fail alike
                            for cand in [entry.cand, *self._duplicates_in_run.get(entry.cand.sha256, [])]:
                                self._record_error(cand.rel, cand.sha256, cand.mtime, cand.size, entry.error)
                    for entry, vector in zip(good, vectors):
                        cand, (width, height) = entry.cand, entry.size
                        blob = np.asarray(vector, dtype="<f2").tobytes()
                        db.execute(
                            "INSERT INTO items (id, path, sha256, mtime, size, width, height, status, embedding)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, 'ok', ?)",
                            (next_row, db_path(cand.rel), cand.sha256, cand.mtime, cand.size, width, height, blob),
                        )
                        self._upsert_file(cand, "ok", next_row)
                        for twin in self._duplicates_in_run.get(cand.sha256, []):
                            self._upsert_file(twin, "duplicate", next_row)
                            self.summary.duplicates += 1
                        next_row += 1
                        self.summary.added += 1
                done += len(batch)
                self.progress("embed", done, len(candidates))

    def _mark_missing(self) -> None:
        db = self.store.db
        gone = [raw for (raw,) in db.execute("SELECT path FROM files WHERE status != 'missing'")
                if from_db_path(raw) not in self._present]
        with self._transaction():
            for raw in gone:
                db.execute("UPDATE files SET status = 'missing' WHERE path = ?", (raw,))
        self.summary.missing = sum(from_db_path(raw) not in self._renamed_from for raw in gone)

    def _refresh_item_status(self) -> None:
        """Item is 'ok' while any of its files is present; re-point its path to a present file."""
        db = self.store.db
        rows = db.execute(
            "SELECT items.id, items.status, items.path,"
            " (SELECT f.path FROM files f WHERE f.item_id = items.id AND f.status IN ('ok','duplicate')"
            "  ORDER BY f.status = 'ok' DESC, f.path LIMIT 1)"
            " FROM items WHERE items.status != 'remote'"
        ).fetchall()
        with self._transaction():
            for row, status, path, live_path in rows:
                new_status = "ok" if live_path else "missing"
                if new_status != status or (live_path and live_path != path):
                    db.execute("UPDATE items SET status = ?, path = ? WHERE id = ?", (new_status, live_path or path, row))
                    if live_path and live_path != path:
                        db.execute("UPDATE files SET status = 'ok' WHERE path = ?", (live_path,))

    # -- helpers ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self):
        """Commit on success (a write point), roll back on any error."""
        db = self.store.db
        try:
            yield db
            write_point("sqlite", self.store.path)
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def _link_existing(self, cand: Candidate, row: int, canonical: str) -> None:
        """A changed/new file whose content is already indexed: point it at that row."""
        state = self.store.db.execute("SELECT status FROM files WHERE path = ?", (db_path(canonical),)).fetchone()
        if canonical != cand.rel and canonical not in self._present and state and state[0] != "missing":
            self._renamed_from.add(canonical)  # the indexed path is gone: a move or rename
            self.summary.renamed += 1
            status = "ok"
        elif canonical == cand.rel or not state or state[0] == "missing" or canonical not in self._present:
            self.summary.unchanged += 1
            status = "ok"
        else:
            self.summary.duplicates += 1
            status = "duplicate"
        self._upsert_file(cand, status, row)

    def _upsert_file(self, cand: Candidate, status: str, row: int | None) -> None:
        self.store.db.execute(
            "INSERT OR REPLACE INTO files (path, sha256, mtime, size, status, error, item_id)"
            " VALUES (?, ?, ?, ?, ?, NULL, ?)",
            (db_path(cand.rel), cand.sha256, cand.mtime, cand.size, status, row),
        )

    def _record_error(self, rel, sha, mtime, size, reason) -> None:
        self.store.db.execute(
            "INSERT OR REPLACE INTO files (path, sha256, mtime, size, status, error, item_id)"
            " VALUES (?, ?, ?, ?, 'error', ?, NULL)",
            (db_path(rel), sha, mtime, size, db_text(reason[:500])),
        )
        self.summary.errors += 1

    def _write_thumbnail(self, sha: str, image) -> None:
        target = self.store.thumb_path(sha)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        thumb = image.copy()
        thumb.thumbnail((self.options.thumb_size, self.options.thumb_size))
        encoded = io.BytesIO()
        thumb.save(encoded, "WEBP", quality=80, method=4)
        data = encoded.getvalue()
        with atomic_path(target, verify=lambda tmp: check_size(tmp, len(data))) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(data)


def write_failure(index: Path, exc: OSError) -> str:
    """One line for a failed write: what, why, and that the last published index is intact."""
    where = f" ({os.fsdecode(exc.filename)})" if exc.filename else ""
    return f"cannot write {index}: {exc.strerror or exc}{where}; the last complete index is intact"


def open_or_create(index_path: Path, images_root: Path, embedder) -> IndexStore:
    """Open the index at `index_path` for writing `images_root` into it, or create it; checks model and root.

    An index whose recorded images folder no longer exists (moved) is re-pointed at `images_root`.
    """
    images_root = images_root.expanduser()
    index_path = Path(index_path).expanduser()
    if not images_root.is_dir():
        raise UsageError(f"not a folder: {images_root}")
    if index_path.exists() and not index_path.is_dir():
        raise UsageError(f"the index path {index_path} is a file, not a folder")
    root = images_root.resolve()
    if (index_path / MANIFEST).is_file():
        store = IndexStore.open(index_path, write=True)
        try:
            store.model.check_compatible(embedder.info, what="--model")
            if store.root.resolve() != root:
                if store.root_found():
                    raise UsageError(f"index {index_path} indexes {store.root}, not {images_root}: use another index folder")
                store.manifest.root, store.manifest.root_abs = _root_text(root, index_path), str(root)
                store._root = None  # the recorded folder is gone: the index follows its images
        except BaseException:
            store.close()
            raise
        return store
    inside = root.is_relative_to(index_path.resolve())  # a shipped index holds its images
    if index_path.exists() and not inside and not _only_index_files(index_path):
        raise IndexNotFoundError(f"{index_path} exists, is not empty and is not a memetui index")
    try:
        return IndexStore.create(index_path, embedder.info, _root_text(root, index_path), str(root))
    except OSError as exc:
        raise IndexWriteError(write_failure(index_path, exc)) from None


def _only_index_files(folder: Path) -> bool:
    """True when `folder` holds nothing but what an interrupted index creation leaves (no manifest yet)."""
    from .lock import LOCK_FILE
    from .store import DATABASE, EMBEDDINGS, HNSW

    allowed = {LOCK_FILE, DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", f"{DATABASE}-journal", EMBEDDINGS, HNSW, "thumbs"}
    return all(name in allowed or (name.startswith(".") and name.endswith(".tmp")) for name in os.listdir(folder))


def _root_text(root: Path, index_path: Path) -> str:
    """How the manifest records the images root: relative when the index sits inside or beside it."""
    try:
        text = os.path.relpath(root, index_path.resolve())
    except ValueError:
        return str(root)
    if text.startswith(".." + os.sep + ".." + os.sep) or os.path.isabs(text):
        return str(root)
    return text
