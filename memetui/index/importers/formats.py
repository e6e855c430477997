"""The four import formats: clip-retrieval shards, .npy + table, an rclip database, memery's memery.pt."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Iterator

import numpy as np

from . import Chunk, ImportFormatError, Part, Record
from .tables import Table, find_table


def open_npy(path: Path) -> np.ndarray:
    """Memory-map a 2-D float16/float32 .npy (ImportFormatError naming the file otherwise)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ImportFormatError(f"{path}: truncated or not a .npy file ({str(exc)[:120]})") from None
    if array.ndim != 2:
        raise ImportFormatError(f"{path}: expected a 2-D [rows, dim] array, found shape {array.shape}")
    if array.dtype not in (np.float16, np.float32):
        raise ImportFormatError(f"{path}: expected float16 or float32 embeddings, found {array.dtype}")
    return array


def numeric_suffix(path: Path) -> int:
    """K of NAME_K.ext (clip-retrieval pads K with zeros): the sort and pairing key."""
    found = re.search(r"(\d+)$", path.stem)
    return int(found.group(1)) if found else -1


def _check_dims(arrays: dict[Path, np.ndarray]) -> int:
    dims = {a.shape[1] for a in arrays.values()}
    if len(dims) > 1:
        first = next(iter(arrays))
        odd = next(p for p, a in arrays.items() if a.shape[1] != arrays[first].shape[1])
        raise ImportFormatError(f"{odd}: dimension {arrays[odd].shape[1]}, but {first.name} has {arrays[first].shape[1]}")
    return dims.pop()


class _ArraysWithTable:
    """Shared reader: rows of .npy parts paired with rows of tables (one per part or one for all)."""

    kind = "npy"
    default_model: str | None = None

    def _setup(self, root: Path, pairs: list[tuple[Path, Table, int]]) -> None:
        """pairs: (npy file, its table, the table row of the npy's first row)."""
        self.root = root
        self._pairs = pairs
        arrays = {npy: open_npy(npy) for npy, _, _ in pairs}
        if not arrays:
            raise ImportFormatError(f"{root}: no embeddings (.npy) found")
        self.dim = _check_dims(arrays)
        self.parts = [Part(npy.name, arrays[npy].shape[0], (npy, table.path)) for npy, table, _ in pairs]

    def read(self, part: int, start: int, chunk: int) -> Iterator[Chunk]:
        """Chunks of part `part` from its row `start` on."""
        npy, table, offset = self._pairs[part]
        array = open_npy(npy)
        position = start
        for records in table.records(offset + start, chunk):
            records = records[: self.parts[part].rows - position]
            if not records:
                break
            yield Chunk(np.array(array[position : position + len(records)]), records)
            position += len(records)
        del array


class ClipRetrievalSource(_ArraysWithTable):
    """clip-retrieval output: img_emb/img_emb_K.npy paired with metadata/metadata_K.parquet by K."""

    kind = "clip-retrieval"

    def __init__(self, src: Path):
        embs = sorted((src / "img_emb").glob("img_emb_*.npy"), key=numeric_suffix)
        metas = {numeric_suffix(p): p for p in (src / "metadata").glob("metadata_*.parquet")}
        pairs = []
        for npy in embs:
            meta = metas.get(numeric_suffix(npy))
            if meta is None:
                raise ImportFormatError(f"{npy}: no metadata/metadata_{numeric_suffix(npy)}.parquet beside it")
            table = Table(meta, require=("image_path",))
            rows = open_npy(npy).shape[0]
            if table.rows != rows:
                raise ImportFormatError(f"{meta}: {table.rows} rows, but {npy.name} holds {rows} embeddings")
            pairs.append((npy, table, 0))
        self._setup(src, pairs)


class NpySource(_ArraysWithTable):
    """One .npy (or a folder of them, in numeric order) plus one JSONL/CSV/parquet table for all rows."""

    kind = "npy"

    def __init__(self, src: Path, meta: Path | None = None):
        folder = src if src.is_dir() else src.parent
        files = sorted(folder.glob("*.npy"), key=lambda p: (numeric_suffix(p), p.name)) if src.is_dir() else [src]
        meta = Path(meta).expanduser() if meta else find_table(folder, None if src.is_dir() else src.stem)
        if meta is None:
            raise ImportFormatError(f"{src}: no metadata table (.jsonl, .csv or .parquet) beside it; pass --meta FILE")
        table = Table(meta)
        pairs, offset = [], 0
        for npy in files:
            pairs.append((npy, table, offset))
            offset += open_npy(npy).shape[0]
        if table.rows != offset:
            raise ImportFormatError(f"{meta}: {table.rows} rows, but the .npy files hold {offset} embeddings")
        self._setup(folder, pairs)


class RclipSource:
    """An rclip database: images(filepath, vector float32 BLOB, deleted, ...); live rows only."""

    kind = "rclip"
    default_model = "ViT-B/32"
    """rclip embeds with OpenAI's ViT-B/32 (open_clip ViT-B-32, pretrained 'openai')."""
    LIVE = "(deleted IS NULL OR deleted = 0)"

    def __init__(self, path: Path):
        self.path = path
        self.root = path.parent
        try:
            with self._connect() as db:
                columns = {row[1] for row in db.execute("PRAGMA table_info(images)")}
                missing = [c for c in ("filepath", "vector", "deleted") if c not in columns]
                if missing:
                    raise ImportFormatError(f"{path}: not an rclip database (table images lacks {missing[0]!r})")
                rows, width = db.execute(f"SELECT COUNT(*), MAX(length(vector)) FROM images WHERE {self.LIVE}").fetchone()
                odd = db.execute(f"SELECT COUNT(*) FROM images WHERE {self.LIVE} AND length(vector) != ?", (width,)).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise ImportFormatError(f"{path}: unreadable database ({exc})") from None
        if not rows:
            raise ImportFormatError(f"{path}: no live images")
        if odd or width % 4:
            raise ImportFormatError(f"{path}: {odd or rows} vectors are not float32 of one dimension")
        self.dim = width // 4
        self.parts = [Part(path.name, int(rows), (path,))]

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def read(self, part: int, start: int, chunk: int) -> Iterator[Chunk]:
        """Live rows by id from `start` on."""
        with self._connect() as db:
            cursor = db.execute(
                f"SELECT filepath, modified_at, size, vector FROM images WHERE {self.LIVE} ORDER BY id LIMIT -1 OFFSET ?",
                (start,),
            )
            while rows := cursor.fetchmany(chunk):
                vectors = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), self.dim)
                records = [Record(r[0], None, None, json.dumps({"modified_at": r[1], "size": r[2]})) for r in rows]
                yield Chunk(vectors, records)


class MemerySource:
    """memery's memery.pt: {index: {'fpath', 'embed', ...}} saved by torch.save (loaded weights-only)."""

    kind = "memery"
    default_model = "ViT-B/32"
    """memery embeds with OpenAI's ViT-B/32 through the `clip` package."""

    def __init__(self, path: Path):
        import torch

        self.path = path
        self.root = path.parent
        try:
            db = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and torch errors
            raise ImportFormatError(f"{path}: cannot load ({str(exc).splitlines()[0][:160]})") from None
        if not isinstance(db, dict) or not db:
            raise ImportFormatError(f"{path}: expected a non-empty dict of {{index: {{'fpath', 'embed'}}}}")
        entries = []
        for key in sorted(db, key=lambda k: (not isinstance(k, int), k if isinstance(k, int) else str(k))):
            entry = db[key]
            if not isinstance(entry, dict) or "embed" not in entry or "fpath" not in entry:
                raise ImportFormatError(f"{path}: entry {key!r} lacks 'fpath' or 'embed'")
            entries.append(entry)
        vectors = np.stack([np.asarray(e["embed"].float().reshape(-1)) for e in entries])
        self._vectors = vectors
        self._records = [Record(str(e["fpath"]), None, None, None) for e in entries]
        self.dim = int(vectors.shape[1])
        self.parts = [Part(path.name, len(entries), (path,))]

    def read(self, part: int, start: int, chunk: int) -> Iterator[Chunk]:
        """Rows in index order from `start` on (memery.pt is small and loaded whole)."""
        for lo in range(start, len(self._records), chunk):
            yield Chunk(self._vectors[lo : lo + chunk], self._records[lo : lo + chunk])
