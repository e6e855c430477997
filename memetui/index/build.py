"""Build or update an index from a folder: scan, hash, embed new content, tombstone the missing.

Resumable: every embedded batch is committed to items.sqlite in one transaction, so a killed
run loses at most one batch; the next run skips what is committed and then rewrites
embeddings.f16.npy, hnsw.bin and manifest.json atomically (manifest last).
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..atomic import atomic_path
from ..errors import ImageLoadError, IndexNotFoundError, UsageError
from ..image_files import is_image_name, load_image
from .ocr_stage import OcrStage, OcrSummary
from .store import HNSW, IndexStore

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
    ocr: bool = True
    """Read text in images (memetui.index.ocr_stage) beside the embedding; items lacking it get it."""
    hnsw_m: int = 16
    hnsw_ef_construction: int = 400
    """400 rather than hnswlib's usual 200: recall@10 at ef=128 rises from 0.974 to 0.990 on
    steered (off-manifold) queries at 100k x 512 (bench/bench_search.py)."""


@dataclass
class BuildSummary:
    """What a build did."""

    added: int = 0
    unchanged: int = 0
    duplicates: int = 0
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
            f"missing {self.missing}, errors {self.errors}, skipped {self.skipped} "
            f"({self.rows} images in index, {self.seconds:.1f} s)"
        ) + (f"; {self.ocr.line()}" if self.ocr is not None else "")


@dataclass
class _Candidate:
    rel: str
    path: Path
    mtime: float
    size: int
    sha256: str = ""


def scan_folder(root: Path, exclude: Path | None = None) -> tuple[list[tuple[str, Path]], int]:
    """Return sorted (relative path, path) of image files under `root`, and the count skipped.

    Hidden files/folders and `exclude` (an index folder inside root) are not entered.
    """
    found, skipped = [], 0
    exclude = exclude.resolve() if exclude else None
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (base / d).resolve() != exclude)
        for name in sorted(files):
            path = base / name
            if name.startswith(".") or not is_image_name(path):
                skipped += 1
                continue
            found.append((path.relative_to(root).as_posix(), path))
    return found, skipped


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prefetch(executor: ThreadPoolExecutor, fn, items: list, depth: int) -> Iterator:
    """Like executor.map, but keeps at most `depth` tasks in flight (bounded memory)."""
    pending = []
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) >= depth:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def _batched(iterable: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class IndexBuilder:
    """Builds or incrementally updates one index folder with one embedder."""

    def __init__(self, store: IndexStore, embedder, options: BuildOptions | None = None,
                 progress: ProgressFn | None = None):
        self.store = store
        self.embedder = embedder
        self.options = options or BuildOptions()
        self.progress = progress or (lambda stage, done, total: None)
        self.summary = BuildSummary()
        self._status_changed: dict[int, str] = {}

    # -- public ----------------------------------------------------------------------------------
    def run(self) -> BuildSummary:
        """Scan the images root, embed what is new, tombstone what is gone, rewrite the index."""
        started = time.perf_counter()
        root = self.store.root
        files, self.summary.skipped = scan_folder(root, exclude=self.store.path)
        self.progress("scan", len(files), len(files))
        changed = self._split_unchanged(files)
        to_embed = self._hash_and_link(changed)
        ocr = OcrStage.start(self.store, self.progress) if self.options.ocr else None
        try:
            self._embed_all(to_embed)
            self._mark_missing({rel for rel, _ in files})
            self._refresh_item_status()
        except BaseException:
            if ocr is not None:
                ocr.cancel()  # what it read is committed; the next build reads the rest
            raise
        if ocr is not None:
            self.summary.ocr = ocr.finish()
        if self.summary.ocr is not None and not self.summary.ocr.unavailable:
            self.store.manifest.ocr = self.summary.ocr.engine
        self._materialise()
        self.summary.rows = self.store.count
        self.summary.seconds = time.perf_counter() - started
        self.summary.error_samples = self.store.errors(limit=10)
        return self.summary

    # -- stages ----------------------------------------------------------------------------------
    def _split_unchanged(self, files: list[tuple[str, Path]]) -> list[_Candidate]:
        known = {
            rel: (mtime, size, status)
            for rel, mtime, size, status in self.store.db.execute("SELECT path, mtime, size, status FROM files")
        }
        changed = []
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
            changed.append(_Candidate(rel, path, stat.st_mtime, stat.st_size))
        return changed

    def _hash_and_link(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """Hash changed files; link those whose content is already indexed; return the rest."""
        db = self.store.db
        to_embed, seen = [], {}
        with ThreadPoolExecutor(self.options.workers) as pool:
            for done, (cand, sha) in enumerate(
                _prefetch(pool, lambda c: (c, self._safe_hash(c.path)), candidates, 4 * self.options.workers), 1
            ):
                self.progress("hash", done, len(candidates))
                if sha is None:
                    self._record_error(cand.rel, None, cand.mtime, cand.size, "cannot read file")
                    continue
                cand.sha256 = sha
                item = db.execute("SELECT id, path FROM items WHERE sha256 = ?", (sha,)).fetchone()
                if item is not None:
                    self._link_existing(cand, item[0], item[1])
                elif sha in seen:  # same content twice among new files: embed once
                    seen[sha].append(cand)
                else:
                    seen[sha] = [cand]
                    to_embed.append(cand)
        self._duplicates_in_run = {sha: group[1:] for sha, group in seen.items() if len(group) > 1}
        db.commit()
        return to_embed

    def _embed_all(self, candidates: list[_Candidate]) -> None:
        import torch

        opts = self.options
        side = max(self.embedder.input_size * 2, opts.thumb_size if opts.thumbnails else 0)
        db = self.store.db
        next_row = db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM items").fetchone()[0]
        done = 0

        def decode(cand: _Candidate):
            try:
                image = load_image(cand.path, max_side=side)
                if opts.thumbnails:
                    self._write_thumbnail(cand.sha256, image)
                return cand, image.size, self.embedder.preprocess(image), None
            except ImageLoadError as exc:
                return cand, None, None, str(exc)

        with ThreadPoolExecutor(opts.workers) as pool:
            decoded = _prefetch(pool, decode, candidates, 2 * opts.batch_size + opts.workers)
            for batch in _batched(decoded, opts.batch_size):
                good = [entry for entry in batch if entry[3] is None]
                vectors = self.embedder.embed_pixels(torch.stack([e[2] for e in good])) if good else []
                with db:  # one transaction per batch: a kill loses at most this batch
                    for cand, _, _, error in batch:
                        if error is not None:
                            self._record_error(cand.rel, cand.sha256, cand.mtime, cand.size, error, commit=False)
                    for (cand, (width, height), _, _), vector in zip(good, vectors):
                        blob = np.asarray(vector, dtype="<f2").tobytes()
                        db.execute(
                            "INSERT INTO items (id, path, sha256, mtime, size, width, height, status, embedding)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, 'ok', ?)",
                            (next_row, cand.rel, cand.sha256, cand.mtime, cand.size, width, height, blob),
                        )
                        self._upsert_file(cand, "ok", next_row)
                        for twin in self._duplicates_in_run.get(cand.sha256, []):
                            self._upsert_file(twin, "duplicate", next_row)
                            self.summary.duplicates += 1
                        next_row += 1
                        self.summary.added += 1
                done += len(batch)
                self.progress("embed", done, len(candidates))

    def _mark_missing(self, present: set[str]) -> None:
        db = self.store.db
        gone = [rel for (rel,) in db.execute("SELECT path FROM files WHERE status != 'missing'") if rel not in present]
        with db:
            for rel in gone:
                db.execute("UPDATE files SET status = 'missing' WHERE path = ?", (rel,))
        self.summary.missing = len(gone)

    def _refresh_item_status(self) -> None:
        """Item is 'ok' while any of its files is present; re-point its path to a present file."""
        db = self.store.db
        rows = db.execute(
            "SELECT items.id, items.status, items.path,"
            " (SELECT f.path FROM files f WHERE f.item_id = items.id AND f.status IN ('ok','duplicate')"
            "  ORDER BY f.status = 'ok' DESC, f.path LIMIT 1)"
            " FROM items"
        ).fetchall()
        with db:
            for row, status, path, live_path in rows:
                new_status = "ok" if live_path else "missing"
                if new_status != status:
                    self._status_changed[row] = new_status
                if new_status != status or (live_path and live_path != path):
                    db.execute("UPDATE items SET status = ?, path = ? WHERE id = ?", (new_status, live_path or path, row))
                    if live_path and live_path != path:
                        db.execute("UPDATE files SET status = 'ok' WHERE path = ?", (live_path,))

    def _materialise(self) -> None:
        """Rewrite embeddings, HNSW graph and manifest if the item table moved past them."""
        store = self.store
        db = store.db
        total = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        hnsw_file = store.path / HNSW
        if total == store.count and not self._status_changed and hnsw_file.is_file():
            store.write_manifest()
            return
        old = store.count if (store.path / "embeddings.f16.npy").is_file() else 0
        try:
            previous = np.asarray(store.embeddings) if old else np.zeros((0, store.dim), np.float16)
        except Exception:
            previous, old = np.zeros((0, store.dim), np.float16), 0
        fresh = np.frombuffer(
            b"".join(blob for (blob,) in db.execute("SELECT embedding FROM items WHERE id >= ? ORDER BY id", (old,))),
            dtype="<f2",
        ).reshape(-1, store.dim)
        embeddings = np.concatenate([previous, fresh.astype(np.float16)])
        store.write_embeddings(embeddings)
        self._write_graph(embeddings, old, hnsw_file)
        store.manifest.count = len(embeddings)
        store.manifest.hnsw.update(M=self.options.hnsw_m, ef_construction=self.options.hnsw_ef_construction)
        store.manifest.hnsw.setdefault("ef_search", 128)
        store.write_manifest()

    def _write_graph(self, embeddings: np.ndarray, old: int, hnsw_file: Path) -> None:
        from .ann import add_to_hnsw, load_hnsw, new_hnsw

        count, dim = embeddings.shape
        graph = None
        if old and hnsw_file.is_file():
            try:
                graph = load_hnsw(hnsw_file, dim, old, 128)
                graph.resize_index(max(count, 1))
                status_changes = self._status_changed
            except Exception:
                graph = None
        if graph is None:
            graph = new_hnsw(dim, count, self.options.hnsw_m, self.options.hnsw_ef_construction)
            old = 0
            status_changes = dict(self.store.db.execute("SELECT id, status FROM items WHERE status != 'ok'"))
        add_to_hnsw(graph, embeddings, old, self.options.workers,
                    lambda done, total: self.progress("graph", done, total))
        for row, status in status_changes.items():
            try:
                graph.mark_deleted(row) if status == "missing" else graph.unmark_deleted(row)
            except RuntimeError:
                pass  # already in the requested state
        with atomic_path(hnsw_file) as tmp:
            graph.save_index(str(tmp))

    # -- helpers ---------------------------------------------------------------------------------
    def _link_existing(self, cand: _Candidate, row: int, canonical: str) -> None:
        """A changed/new file whose content is already indexed: point it at that row."""
        state = self.store.db.execute("SELECT status FROM files WHERE path = ?", (canonical,)).fetchone()
        status = "ok" if canonical == cand.rel or not state or state[0] == "missing" else "duplicate"
        if status == "duplicate":
            self.summary.duplicates += 1
        else:
            self.summary.unchanged += 1
        self._upsert_file(cand, status, row)

    def _upsert_file(self, cand: _Candidate, status: str, row: int | None) -> None:
        self.store.db.execute(
            "INSERT OR REPLACE INTO files (path, sha256, mtime, size, status, error, item_id)"
            " VALUES (?, ?, ?, ?, ?, NULL, ?)",
            (cand.rel, cand.sha256, cand.mtime, cand.size, status, row),
        )

    def _record_error(self, rel, sha, mtime, size, reason, commit=True) -> None:
        self.store.db.execute(
            "INSERT OR REPLACE INTO files (path, sha256, mtime, size, status, error, item_id)"
            " VALUES (?, ?, ?, ?, 'error', ?, NULL)",
            (rel, sha, mtime, size, reason[:500]),
        )
        if commit:
            self.store.db.commit()
        self.summary.errors += 1

    @staticmethod
    def _safe_hash(path: Path) -> str | None:
        try:
            return sha256_file(path)
        except OSError:
            return None

    def _write_thumbnail(self, sha: str, image) -> None:
        target = self.store.thumbs_dir / sha[:2] / f"{sha}.webp"
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        thumb = image.copy()
        thumb.thumbnail((self.options.thumb_size, self.options.thumb_size))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{id(thumb)}.tmp")
        thumb.save(tmp, "WEBP", quality=80, method=4)
        os.replace(tmp, target)


def open_or_create(index_path: Path, images_root: Path, embedder) -> IndexStore:
    """Open the index at `index_path` for `images_root`, or create it; checks model and root."""
    from .store import MANIFEST

    images_root = images_root.expanduser()
    if not images_root.is_dir():
        raise UsageError(f"not a folder: {images_root}")
    if (index_path / MANIFEST).is_file():
        store = IndexStore.open(index_path)
        store.model.check_compatible(embedder.info, what="--model")
        if store.root.resolve() != images_root.resolve():
            raise UsageError(f"index {index_path} indexes {store.root}, not {images_root}: use another --index")
        return store
    inside = images_root.resolve().is_relative_to(index_path.resolve())  # a shipped index holds its images
    if index_path.exists() and any(index_path.iterdir()) and not inside:
        raise IndexNotFoundError(f"{index_path} exists, is not empty and is not a memetui index")
    root = images_root.resolve()
    try:  # an index stored inside or beside its images stays valid when the folder moves
        root_text = os.path.relpath(root, index_path.resolve())
    except ValueError:
        root_text = str(root)
    if root_text.startswith(".." + os.sep + ".." + os.sep) or os.path.isabs(root_text):
        root_text = str(root)
    return IndexStore.create(index_path, embedder.info, root_text)
