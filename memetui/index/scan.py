"""Finding what to index: walk the images folder, stat and hash files, bounded parallel helpers.

File names are bytes on disk: os.walk gives `str` with undecodable bytes surrogate-escaped, and
those names pass through unchanged (db.py stores them as raw bytes).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from ..hashing import sha256_file
from ..image_files import is_image_name


@dataclass
class Candidate:
    """A file that is new or changed since the last build."""

    rel: str
    """Path relative to the images root, '/'-separated (may hold surrogate-escaped bytes)."""
    path: Path
    mtime: float
    size: int
    sha256: str = ""


class Decoded(NamedTuple):
    """One candidate after decoding: its pixels for the model, or why it could not be read."""

    cand: Candidate
    size: tuple[int, int] | None
    """(width, height) of the decoded image; None on error."""
    pixels: object
    """The model's preprocessed tensor; None on error."""
    error: str | None


class ScanResult(NamedTuple):
    """Image files under a root, sorted by relative path, and how many other files were skipped."""

    files: list[tuple[str, Path]]
    skipped: int


def scan_folder(root: Path, exclude: Path | None = None) -> ScanResult:
    """Image files under `root` as (relative path, path), sorted; hidden entries and `exclude` are not entered."""
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
    return ScanResult(found, skipped)


def safe_hash(path: Path) -> str | None:
    """sha256 of a file, or None when it cannot be read."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def prefetch(executor: ThreadPoolExecutor, fn, items: list, depth: int) -> Iterator:
    """Like executor.map, but keeps at most `depth` tasks in flight (bounded memory)."""
    pending = []
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) >= depth:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def batched(iterable: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
