"""IndexStore: open or create an index folder; memory-mapped embeddings; atomic writes.

Folder layout (format 1)::

    INDEX/
      manifest.json       format, model identity, counts, images root, HNSW parameters
      embeddings.f16.npy  [N, dim] float16, unit rows, row i = items.id i
      items.sqlite        items (one row per distinct image content) + files (every path seen)
      hnsw.bin            hnswlib graph over the rows (space 'ip')
      thumbs/             small WebP thumbnails by sha256
      sae/                trained sparse autoencoders for this index
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, check_size, remove_stale_tmp, write_json_atomic
from ..errors import IndexFormatError, IndexNotFoundError
from ..model_info import ModelInfo
from .db import close_writer, connect_reader, connect_writer, from_db_path
from .lock import WriterLock

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.f16.npy"
DATABASE = "items.sqlite"
HNSW = "hnsw.bin"

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,          -- row in embeddings.f16.npy
    path TEXT NOT NULL,              -- canonical path, relative to the images root
    sha256 TEXT NOT NULL UNIQUE,
    mtime REAL, size INTEGER, width INTEGER, height INTEGER,
    status TEXT NOT NULL,            -- 'ok' | 'missing'
    error TEXT,
    embedding BLOB NOT NULL          -- float16 little-endian, dim values
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,           -- relative to the images root
    sha256 TEXT, mtime REAL, size INTEGER,
    status TEXT NOT NULL,            -- 'ok' | 'duplicate' | 'error' | 'missing'
    error TEXT,
    item_id INTEGER REFERENCES items(id)
);
CREATE INDEX IF NOT EXISTS files_item ON files(item_id);
CREATE INDEX IF NOT EXISTS items_status ON items(status);  -- live_mask reads the few dead rows
CREATE TABLE IF NOT EXISTS item_meta (   -- imported items: what is known besides the embedding
    id INTEGER PRIMARY KEY REFERENCES items(id),
    url TEXT, caption TEXT,
    meta TEXT                        -- JSON object of the source's other columns
);
"""
LIVE_STATUSES = ("ok", "remote")
"""Item statuses that are searched: 'remote' = imported row whose image is not on this machine."""


@dataclass
class Manifest:
    """Contents of manifest.json."""

    model: ModelInfo
    root: str
    """Images root: absolute, or relative to the index folder (shipped indexes)."""
    count: int = 0
    """Published rows: readers see rows 0..count-1 only (a running build's rows stay invisible)."""
    root_abs: str = ""
    """The images root as an absolute path when the index was last built: used when the relative
    `root` no longer leads to the images (the index folder was moved alone)."""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    hnsw: dict = field(default_factory=lambda: default_hnsw_params())
    ocr: dict = field(default_factory=dict)
    """OCR engine that read the items' text ({"name", "version", ...}); empty when none has."""
    ann: dict = field(default_factory=dict)
    """Where the vectors are also served from when not the local ANN files (memetui/index/milvus_ann.py):
    {"kind": "milvus", "uri", "collection", "synced", "deleted"}; empty = local only."""
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        """Return the JSON-serialisable form."""
        data = asdict(self)
        data["model"] = asdict(self.model)
        return {"format": data.pop("format"), **data}

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        """Parse and validate a manifest dictionary."""
        if data.get("format") != FORMAT_VERSION:
            raise IndexFormatError(f"unsupported index format {data.get('format')!r} (expected {FORMAT_VERSION})")
        try:
            return cls(
                model=ModelInfo(**data["model"]),
                root=str(data["root"]),
                count=int(data["count"]),
                root_abs=str(data.get("root_abs") or ""),
                created=float(data["created"]),
                updated=float(data["updated"]),
                hnsw=dict(data.get("hnsw") or {}),
                ocr=dict(data.get("ocr") or {}),
                ann=dict(data.get("ann") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"malformed manifest: {exc}") from None


def default_hnsw_params() -> dict:
    """The HNSW parameters a new index records (constants in ann.py)."""
    from .ann import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M

    return {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}


@dataclass(frozen=True)
class Item:
    """One indexed image (one distinct content)."""

    row: int
    path: Path
    """Absolute path of the image file."""
    sha256: str
    width: int
    height: int
    size: int
    status: str
    url: str | None = None  # imported items: where the image lives on the web
    caption: str | None = None  # imported items: caption / alt text
    meta: str | None = None  # imported items: JSON object of the source's other columns

    @property
    def has_image(self) -> bool:
        """True when the image file is on this machine (False for 'remote' imported rows)."""
        return self.status == "ok"


class IndexStore:
    """An index folder: manifest, embeddings (memory-mapped, read-only) and item database."""

    def __init__(self, path: Path, manifest: Manifest, lock: WriterLock | None = None):
        self.path = Path(path)
        self.manifest = manifest
        self.lock = lock
        """The writer lock when this store was opened for writing (None for readers)."""
        self._embeddings: np.ndarray | None = None
        self._db: sqlite3.Connection | None = None
        self._live: np.ndarray | None = None
        self._root: Path | None = None
        self.fallback: str | None = None
        """Why the embeddings were read from items.sqlite instead of the damaged file (None if not)."""

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, write: bool = False) -> "IndexStore":
        """Open an existing index folder: read-only (the last published build), or for writing.

        Readers never write (no schema, no journal files) and see rows 0..manifest.count-1 only.
        `write=True` takes the writer lock (IndexBusyError while another build runs).
        """
        path = Path(path).expanduser()
        if not path.is_dir():
            raise IndexNotFoundError(f"no index at {path}" + (" (it is a file)" if path.exists() else ""))
        lock = WriterLock(path).acquire() if write else None
        try:
            store = cls(path, read_manifest(path), lock)
            if write:
                remove_stale_tmp(path)
            if not store.vectors_only_in_milvus():
                store.embeddings  # validate eagerly: a broken index fails at open, not mid-search
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return store

    @classmethod
    def create(cls, path: str | Path, model: ModelInfo, root: str, root_abs: str = "") -> "IndexStore":
        """Create an empty index folder for `model` over images under `root`; returns it open for writing."""
        path = Path(path).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(path).acquire()
        try:
            store = cls(path, Manifest(model=model, root=root, root_abs=root_abs), lock)
            store.db  # the schema exists before the manifest says the index does
            store.write_embeddings(np.zeros((0, model.dim), dtype=np.float16))
            store.write_manifest()
        except BaseException:
            lock.release()
            raise
        return store

    @property
    def writable(self) -> bool:
        """True when this store holds the writer lock."""
        return self.lock is not None and self.lock.held

    # -- properties ----------------------------------------------------------------------------
    @property
    def model(self) -> ModelInfo:
        """The model that embedded this index."""
        return self.manifest.model

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self.manifest.model.dim

    @property
    def count(self) -> int:
        """Number of published rows (distinct images, including tombstoned ones)."""
        return self.manifest.count

    @property
    def root(self) -> Path:
        """Absolute images root: the recorded relative root, or the absolute one if the index moved alone."""
        if self._root is None:
            from ..paths import images_root

            self._root = images_root(self)
        return self._root

    def root_found(self) -> bool:
        """True when the images root exists (False when the index or its images moved)."""
        return self.root.is_dir()

    @property
    def sae_dir(self) -> Path:
        """Folder holding this index's trained SAEs."""
        return self.path / "sae"

    @property
    def thumbs_dir(self) -> Path:
        """Folder holding thumbnails by sha256."""
        return self.path / "thumbs"

    def has_memmap(self) -> bool:
        """True when embeddings.f16.npy is well formed and holds every published row (reads only its header)."""
        from .check import embeddings_rows

        try:
            return embeddings_rows(self.path / EMBEDDINGS, self.dim) >= self.count
        except IndexFormatError:
            return False

    def vectors_only_in_milvus(self) -> bool:
        """True when the vectors are in a Milvus collection and there is no whole local memmap."""
        from .milvus_ann import is_milvus

        return is_milvus(self.manifest.ann) and not self.has_memmap()

    @property
    def embeddings(self) -> np.ndarray:
        """[N, dim] float16 unit rows, memory-mapped read-only."""
        if self._embeddings is None:
            from .check import embeddings_from_db, embeddings_rows

            file = self.path / EMBEDDINGS
            try:
                rows = embeddings_rows(file, self.dim)
                if rows < self.count:
                    raise IndexFormatError(f"{EMBEDDINGS} holds {rows:,} rows, the manifest {self.count:,}")
                emb = np.load(file, mmap_mode="r", allow_pickle=False)[: self.count]  # later rows: unpublished
            except IndexFormatError as exc:
                emb, self.fallback = embeddings_from_db(self), str(exc)
                log.warning("%s: %s; reading embeddings from %s", self.path, exc, DATABASE)
            self._embeddings = emb
        return self._embeddings

    # -- items ---------------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """The item database: read-only for readers, WAL + schema for the writer (see db.py)."""
        if self._db is None:
            file = self.path / DATABASE
            self._db = connect_writer(file, SCHEMA) if self.writable else connect_reader(file)
            if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'item_meta'").fetchone():  # older index
                self._db.execute("CREATE TEMP TABLE item_meta (id INTEGER PRIMARY KEY, url TEXT, caption TEXT, meta TEXT)")
        return self._db

    def items_count(self) -> int:
        """Rows in items.sqlite, published or not."""
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def pending_rows(self) -> int:
        """Rows embedded past the manifest's count: a build running or interrupted (the next build publishes them)."""
        return max(self.items_count() - self.count, 0)

    def problems(self) -> list[str]:
        """What is wrong with the derived files, in words ([] when whole); a build repairs all of it."""
        from .check import index_problems

        return index_problems(self)

    def item(self, row: int) -> Item:
        """Return the item stored at embedding row `row`."""
        found = self.db.execute(
            "SELECT items.id, path, sha256, width, height, size, status, url, caption, meta"
            " FROM items LEFT JOIN item_meta ON item_meta.id = items.id WHERE items.id = ?", (int(row),)
        ).fetchone()
        if found is None or not 0 <= int(row) < self.count:
            raise IndexFormatError(f"row {row} is not in {self.path / DATABASE}")
        return Item(found[0], self.root / from_db_path(found[1]), *found[2:])

    def paths(self, rows) -> list[Path]:
        """Absolute image paths for embedding rows, in the given order."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = {r: from_db_path(p) for r, p in self.db.execute(f"SELECT id, path FROM items WHERE id IN ({marks})", rows)}
        lost = [r for r in rows if r not in found or not 0 <= r < self.count]
        if lost:
            raise IndexFormatError(f"rows {lost[:5]} are not in {self.path / DATABASE}")
        root = self.root
        return [root / found[r] for r in rows]

    def thumb_path(self, sha256: str) -> Path:
        """Where the build writes the thumbnail of the content `sha256` (it may not exist)."""
        return self.thumbs_dir / sha256[:2] / f"{sha256}.webp"

    def live_mask(self) -> np.ndarray:
        """Boolean [N] mask of searchable rows (status 'ok', or 'remote' for imported rows without a local image)."""
        if self._live is None:  # read only the few dead rows, through items_status (no rowid bound:
            mask = np.ones(self.count, dtype=bool)  # SQLite would scan 1M rows with inline blobs, ~3 s)
            dead = np.asarray([r for (r,) in self.db.execute("SELECT id FROM items WHERE status < 'ok'"
                               " OR (status > 'ok' AND status < 'remote') OR status > 'remote'")], np.int64)
            mask[dead[dead < self.count]] = False
            if self.items_count() < self.count:  # damaged database: rows without an item are not searchable
                mask &= np.isin(np.arange(self.count), [r for (r,) in self.db.execute("SELECT id FROM items")])
            self._live = mask
        return self._live

    def status_counts(self) -> dict[str, int]:
        """Counts of files by status ('ok', 'duplicate', 'error', 'missing')."""
        counts = dict(self.db.execute(  # files of unpublished rows are not counted yet
            "SELECT status, COUNT(*) FROM files WHERE item_id IS NULL OR item_id < ? GROUP BY status", (self.count,)))
        return {key: int(counts.get(key, 0)) for key in ("ok", "duplicate", "error", "missing")}

    def errors(self, limit: int = 20) -> list[tuple[str, str]]:
        """(path, reason) of files that could not be indexed."""
        found = self.db.execute("SELECT path, error FROM files WHERE status = 'error' ORDER BY path LIMIT ?", (limit,))
        return [(from_db_path(path), error) for path, error in found]

    def sae_names(self) -> list[str]:
        """Names of the SAEs trained for this index."""
        if not self.sae_dir.is_dir():
            return []
        return sorted(p.stem for p in self.sae_dir.glob("*.json") if (p.with_suffix(".safetensors")).is_file())

    # -- writing -------------------------------------------------------------------------------
    def write_embeddings(self, embeddings: np.ndarray) -> None:
        """Atomically replace embeddings.f16.npy with `embeddings` ([N, dim] float16)."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float16)
        self._embeddings = None
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(embeddings))
        expected = header.tell() + embeddings.nbytes
        with atomic_path(self.path / EMBEDDINGS, verify=lambda tmp: check_size(tmp, expected)) as tmp:
            with open(tmp, "wb") as handle:
                np.lib.format.write_array(handle, embeddings, version=(1, 0), allow_pickle=False)

    def write_manifest(self) -> None:
        """Atomically write manifest.json (call last: it commits a consistent update)."""
        self.manifest.updated = time.time()
        write_json_atomic(self.path / MANIFEST, self.manifest.to_dict())
        self._embeddings = None
        self._live = None

    def close(self) -> None:
        """Close the database (the writer switches it back to rollback-journal mode) and release the lock."""
        if self._db is not None:
            db, self._db = self._db, None
            close_writer(db) if self.writable else db.close()
        if self.lock is not None:
            self.lock.release()


def read_manifest(path: Path) -> Manifest:
    """Read and validate INDEX/manifest.json."""
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise IndexNotFoundError(f"{path} is not a memetui index (no {MANIFEST})")
    try:
        data = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"cannot read {manifest_file}: {exc}") from None
    if not isinstance(data, dict):
        raise IndexFormatError(f"cannot read {manifest_file}: not a JSON object")
    return Manifest.from_dict(data)

