"""Readers for embeddings made elsewhere: clip-retrieval shards, .npy + table, rclip, memery.

Every reader is a `Source`: a list of `Part`s (one per shard/file) whose row counts and
dimension are known from headers alone (checked up front, so a malformed input fails before
anything is written), and `read(part, start)` streaming `Chunk`s of at most `chunk` rows from row
`start` of that part (so an interrupted import continues where it stopped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Protocol

import numpy as np

from ...errors import MemetuiError


class ImportFormatError(MemetuiError):
    """An import source is malformed (the message names the file)."""


class Record(NamedTuple):
    """What a source knows about one row besides its embedding."""

    path: str | None
    """Image path as the source wrote it (absolute, or relative to the source folder)."""
    url: str | None
    caption: str | None
    meta: str | None
    """JSON object of the other columns, or None."""


class Chunk(NamedTuple):
    """Consecutive rows of one part."""

    vectors: np.ndarray
    """[n, d] float16 or float32 embeddings as stored by the source."""
    records: list[Record]


@dataclass(frozen=True)
class Part:
    """One file (or shard pair) of a source."""

    name: str
    """The file a message about this part names."""
    rows: int
    files: tuple[Path, ...] = field(default=())
    """Files whose size and mtime identify this part's content (for resuming)."""


class Source(Protocol):
    """A readable import source."""

    kind: str
    """'clip-retrieval', 'npy', 'rclip' or 'memery'."""
    root: Path
    """Folder relative image paths are resolved against."""
    dim: int
    parts: list[Part]
    default_model: str | None
    """Model the tool that wrote this source always uses (None: --model is required)."""

    def read(self, part: int, start: int, chunk: int) -> Iterator[Chunk]:
        """Chunks of part `part` from its row `start` on."""


PATH_COLUMNS = ("image_path", "path", "filepath", "file_path", "file", "filename", "fpath")
URL_COLUMNS = ("url", "image_url", "URL")
CAPTION_COLUMNS = ("caption", "text", "title", "alt", "TEXT")


def pick_column(names, choices) -> str | None:
    """The first of `choices` present in `names`."""
    return next((c for c in choices if c in names), None)


def open_source(src: Path, meta: Path | None = None) -> Source:
    """Detect the format of `src` and open it (ImportFormatError if it is none of the known ones)."""
    from .formats import ClipRetrievalSource, MemerySource, NpySource, RclipSource

    src = Path(src).expanduser()
    if not src.exists():
        raise ImportFormatError(f"{src}: no such file or folder")
    if src.is_dir() and (src / "img_emb").is_dir():
        return ClipRetrievalSource(src)
    if src.is_file() and src.suffix in (".pt", ".pth") or (src.is_dir() and (src / "memery.pt").is_file()):
        return MemerySource(src if src.is_file() else src / "memery.pt")
    if src.is_file() and src.suffix in (".db", ".sqlite", ".sqlite3"):
        return RclipSource(src)
    if src.suffix == ".npy" or (src.is_dir() and any(src.glob("*.npy"))):
        return NpySource(src, meta)
    raise ImportFormatError(
        f"{src}: not a clip-retrieval folder (img_emb/), .npy file or folder, rclip database or memery.pt"
    )


def check_vectors(vectors: np.ndarray, name: str, first_row: int) -> np.ndarray:
    """[n, d] float16 unit rows from a chunk: fp16 unit rows pass bit for bit, others are normalised."""
    if vectors.dtype == np.float16:
        norms = np.linalg.norm(vectors.astype(np.float32), axis=1)
        if np.all(np.abs(norms - 1) < 1e-2):
            return np.ascontiguousarray(vectors)
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms < 1e-6))
    if len(bad):
        raise ImportFormatError(f"{name}: row {first_row + int(bad[0])} is zero or not finite")
    return (vectors / norms[:, None]).astype(np.float16)
