"""Persistent text-embedding cache: (model sha256, text) -> float32 vector, one small file per entry.

`memetui search` on a repeated text costs a file read instead of importing torch and open_clip and
loading the model (4-7 s per call): a hit imports nothing but numpy. Entries live in the user
cache folder (platformdirs; $MEMETUI_CACHE_DIR overrides) under text/<model sha[:16]>/, named by
sha256(model sha, text); a damaged or foreign entry reads as a miss. Writes are atomic (temp
file + rename) so concurrent processes never see half an entry; failures to write are ignored.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

MAGIC = b"MTC1"
"""Entry = MAGIC + uint32 dimension + float32 values (little-endian)."""


def cache_dir() -> Path:
    """Folder of the text-embedding cache."""
    from .paths import user_cache_dir

    return user_cache_dir() / "text"


def _entry(model_sha: str, text: str) -> Path:
    key = hashlib.sha256(f"{model_sha}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()
    return cache_dir() / model_sha[:16] / key[:2] / f"{key}.f32"


def get(model_sha: str, text: str) -> np.ndarray | None:
    """The cached [d] float32 embedding of `text` under model `model_sha` (read-only), or None."""
    try:
        data = _entry(model_sha, text).read_bytes()
    except OSError:
        return None
    if len(data) < 8 or data[:4] != MAGIC:
        return None
    dim = int.from_bytes(data[4:8], "little")
    if len(data) != 8 + 4 * dim:
        return None
    vector = np.frombuffer(data, dtype="<f4", offset=8)
    return vector if np.isfinite(vector).all() else None


def put(model_sha: str, text: str, vector: np.ndarray) -> None:
    """Store the embedding of `text` under model `model_sha` (best effort: errors are ignored)."""
    vector = np.ascontiguousarray(vector, dtype="<f4").reshape(-1)
    target = _entry(model_sha, text)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(MAGIC + len(vector).to_bytes(4, "little") + vector.tobytes())
        os.replace(tmp, target)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
