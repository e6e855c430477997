"""Where things live: the shipped sample index and models, user config and data folders."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import IndexNotFoundError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_INDEX = PACKAGE_ROOT / "sample_index"
HIDDEN_INDEX = ".memetui"
"""`memetui index DIR` stores its index in DIR/.memetui unless --index says otherwise."""


def default_index() -> Path:
    """The index opened when none is named: $MEMETUI_INDEX, else the shipped sample index."""
    return Path(os.environ.get("MEMETUI_INDEX") or SAMPLE_INDEX)


def resolve_index(arg: str | Path | None) -> Path:
    """Map a user's INDEX argument (an index folder, or an images folder holding .memetui) to a path."""
    from .index.store import MANIFEST

    path = Path(arg).expanduser() if arg else default_index()
    if (path / MANIFEST).is_file():
        return path
    if (path / HIDDEN_INDEX / MANIFEST).is_file():
        return path / HIDDEN_INDEX
    if arg is None:
        raise IndexNotFoundError(f"no index at {path}")
    return path


def user_config_dir() -> Path:
    """memetui's per-user config folder (key map), from platformdirs; $MEMETUI_CONFIG_DIR overrides."""
    from platformdirs import user_config_dir as config_dir

    return Path(os.environ.get("MEMETUI_CONFIG_DIR") or config_dir("memetui"))


def user_data_dir() -> Path:
    """memetui's per-user data folder (history, bookmarks); $MEMETUI_DATA_DIR overrides."""
    from platformdirs import user_data_dir as data_dir

    return Path(os.environ.get("MEMETUI_DATA_DIR") or data_dir("memetui"))


def user_cache_dir() -> Path:
    """memetui's per-user cache folder (derived data such as PCA); $MEMETUI_CACHE_DIR overrides."""
    from platformdirs import user_cache_dir as cache_dir

    return Path(os.environ.get("MEMETUI_CACHE_DIR") or cache_dir("memetui"))


def images_root(store) -> Path:
    """The images root: `root` (relative to the index when it sits beside its images), else `root_abs`.

    When the index folder was moved without its images, the relative root leads elsewhere; then
    the recorded absolute root is used if a sample of indexed files exists there.
    """
    import sqlite3

    from .index.db import from_db_path

    recorded = Path(store.manifest.root).expanduser()
    if recorded.is_absolute():
        return recorded
    relative = (store.path / recorded).resolve()
    absolute = Path(store.manifest.root_abs) if store.manifest.root_abs else None
    if absolute is None or absolute == relative or not absolute.is_dir():
        return relative
    try:
        sample = [from_db_path(p) for (p,) in store.db.execute(
            "SELECT path FROM files WHERE status IN ('ok', 'duplicate') LIMIT 5")]
    except sqlite3.Error:
        return relative
    here = sum((relative / rel).exists() for rel in sample) if relative.is_dir() else 0
    there = sum((absolute / rel).exists() for rel in sample)
    return absolute if there > here else relative


def cache_dir_for(store) -> Path:
    """A per-user cache folder for one index's derived data (e.g. PCA's pca.npz); never inside the index.

    Keyed by the index folder's resolved path, so a read-only or shipped index gets caches too;
    callers still key their files by the index's count/update time/model (a rebuilt index at the
    same path must not reuse a stale cache). Not created here.
    """
    import hashlib

    key = hashlib.sha256(os.fsencode(os.path.realpath(store.path))).hexdigest()[:16]
    return user_cache_dir() / "indexes" / f"{Path(store.path).name}-{key}"
