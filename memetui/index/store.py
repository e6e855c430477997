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

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_json_atomic
from ..errors import IndexFormatError, IndexNotFoundError, ModelMismatchError

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
"""


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the CLIP model that produced an index's embeddings."""

    name: str
    """open_clip model (config) name, e.g. 'ViT-B-32' or 'memetui-demo-clip'."""
    pretrained: str | None
    """open_clip pretrained tag, or a checkpoint file name/path; None for random weights."""
    dim: int
    """Embedding dimension."""
    sha256: str
    """Hash of the checkpoint file (or of name + tag for hub weights): the identity that counts."""

    def check_compatible(self, other: "ModelInfo", what: str = "query") -> None:
        """Raise ModelMismatchError unless `other` is the same model as this one."""
        if self.sha256 != other.sha256 or self.dim != other.dim:
            raise ModelMismatchError(
                f"{what} model {other.name} ({other.pretrained}, dim {other.dim}, {other.sha256[:12]}) "
                f"does not match the index model {self.name} ({self.pretrained}, dim {self.dim}, "
                f"{self.sha256[:12]})"
            )


@dataclass
class Manifest:
    """Contents of manifest.json."""

    model: ModelInfo
    root: str
    """Images root: absolute, or relative to the index folder (shipped indexes)."""
    count: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    hnsw: dict = field(default_factory=lambda: {"M": 16, "ef_construction": 400, "ef_search": 128})
    ocr: dict = field(default_factory=dict)
    """OCR engine that read the items' text ({"name", "version", ...}); empty when none has."""
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
                created=float(data["created"]),
                updated=float(data["updated"]),
                hnsw=dict(data.get("hnsw") or {}),
                ocr=dict(data.get("ocr") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"malformed manifest: {exc}") from None


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


class IndexStore:
    """An index folder: manifest, embeddings (memory-mapped, read-only) and item database."""

    def __init__(self, path: Path, manifest: Manifest):
        self.path = Path(path)
        self.manifest = manifest
        self._embeddings: np.ndarray | None = None
        self._db: sqlite3.Connection | None = None
        self._live: np.ndarray | None = None

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "IndexStore":
        """Open an existing index folder, validating its manifest and embeddings file."""
        path = Path(path).expanduser()
        if not path.is_dir():
            raise IndexNotFoundError(f"no index at {path} (build one with: memetui index DIR --index {path})")
        manifest_file = path / MANIFEST
        if not manifest_file.is_file():
            raise IndexNotFoundError(f"{path} is not a memetui index (no {MANIFEST})")
        try:
            data = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexFormatError(f"cannot read {manifest_file}: {exc}") from None
        if not isinstance(data, dict):
            raise IndexFormatError(f"cannot read {manifest_file}: not a JSON object")
        store = cls(path, Manifest.from_dict(data))
        store.embeddings  # validate eagerly: a broken index fails at open, not mid-search
        return store

    @classmethod
    def create(cls, path: str | Path, model: ModelInfo, root: str) -> "IndexStore":
        """Create an empty index folder for `model` over images under `root`."""
        path = Path(path).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        store = cls(path, Manifest(model=model, root=root))
        store.write_embeddings(np.zeros((0, model.dim), dtype=np.float16))
        store.write_manifest()
        return store

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
        """Number of rows (distinct images, including tombstoned ones)."""
        return self.manifest.count

    @property
    def root(self) -> Path:
        """Absolute images root."""
        root = Path(self.manifest.root).expanduser()
        return root if root.is_absolute() else (self.path / root).resolve()

    @property
    def sae_dir(self) -> Path:
        """Folder holding this index's trained SAEs."""
        return self.path / "sae"

    @property
    def thumbs_dir(self) -> Path:
        """Folder holding thumbnails by sha256."""
        return self.path / "thumbs"

    @property
    def embeddings(self) -> np.ndarray:
        """[N, dim] float16 unit rows, memory-mapped read-only."""
        if self._embeddings is None:
            file = self.path / EMBEDDINGS
            try:
                emb = np.load(file, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise IndexFormatError(f"index {self.path} has no {EMBEDDINGS}") from None
            except (OSError, ValueError) as exc:
                raise IndexFormatError(f"cannot read {file}: {exc}") from None
            if emb.ndim != 2 or emb.shape[1] != self.dim or emb.dtype != np.float16:
                raise IndexFormatError(f"{file}: expected [N, {self.dim}] float16, found {emb.shape} {emb.dtype}")
            if emb.shape[0] != self.count:
                raise IndexFormatError(
                    f"{file} holds {emb.shape[0]} rows but the manifest says {self.count}: "
                    "the index is mid-update; re-run `memetui index`"
                )
            self._embeddings = emb
        return self._embeddings

    # -- items ---------------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """The item database (WAL mode), created on first use."""
        if self._db is None:
            try:
                db = sqlite3.connect(self.path / DATABASE, check_same_thread=False, timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise IndexFormatError(f"cannot open {self.path / DATABASE}: {exc}") from None
            self._db = db
        return self._db

    def item(self, row: int) -> Item:
        """Return the item stored at embedding row `row`."""
        found = self.db.execute(
            "SELECT id, path, sha256, width, height, size, status FROM items WHERE id = ?", (int(row),)
        ).fetchone()
        if found is None:
            raise IndexFormatError(f"row {row} is not in {self.path / DATABASE}")
        return Item(found[0], self.root / found[1], *found[2:])

    def paths(self, rows) -> list[Path]:
        """Absolute image paths for embedding rows, in the given order."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = dict(self.db.execute(f"SELECT id, path FROM items WHERE id IN ({marks})", rows))
        root = self.root
        return [root / found[r] for r in rows]

    def thumbnail(self, row: int) -> Path:
        """The 256 px thumbnail of `row` when the build wrote one, else the original image."""
        item = self.item(row)
        thumb = self.thumbs_dir / item.sha256[:2] / f"{item.sha256}.webp"
        return thumb if thumb.is_file() else item.path

    def live_mask(self) -> np.ndarray:
        """Boolean [N] mask of rows whose image is present (status 'ok')."""
        if self._live is None:
            mask = np.zeros(self.count, dtype=bool)
            rows = [r for (r,) in self.db.execute("SELECT id FROM items WHERE status = 'ok'")]
            mask[np.asarray(rows, dtype=np.int64)] = True
            self._live = mask
        return self._live

    def status_counts(self) -> dict[str, int]:
        """Counts of files by status ('ok', 'duplicate', 'error', 'missing')."""
        counts = dict(self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status"))
        return {key: int(counts.get(key, 0)) for key in ("ok", "duplicate", "error", "missing")}

    def errors(self, limit: int = 20) -> list[tuple[str, str]]:
        """(path, reason) of files that could not be indexed."""
        return list(self.db.execute("SELECT path, error FROM files WHERE status = 'error' ORDER BY path LIMIT ?", (limit,)))

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
        with atomic_path(self.path / EMBEDDINGS) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, embeddings, allow_pickle=False)

    def write_manifest(self) -> None:
        """Atomically write manifest.json (call last: it commits a consistent update)."""
        self.manifest.updated = time.time()
        write_json_atomic(self.path / MANIFEST, self.manifest.to_dict())
        self._embeddings = None
        self._live = None

    def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            self._db.close()
            self._db = None
