"""File hashing, written once: image contents (index builds) and model checkpoints (identity)."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

BLOCK = 1 << 20
"""Bytes read per step while hashing."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (raises OSError)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=16)
def _memo_sha256(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def sha256_file_cached(path: str | os.PathLike) -> str:
    """sha256_file memoised per path, mtime and size (model checkpoints hashed once per process)."""
    stat = os.stat(path)
    return _memo_sha256(os.fspath(path), stat.st_mtime_ns, stat.st_size)
