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
    path = Path(arg).expanduser() if arg else default_index()
    if (path / "manifest.json").is_file():
        return path
    if (path / HIDDEN_INDEX / "manifest.json").is_file():
        return path / HIDDEN_INDEX
    if arg is None:
        raise IndexNotFoundError(f"no index at {path}; build one with: memetui index DIR")
    return path


def user_config_dir() -> Path:
    """memetui's per-user config folder (key map), from platformdirs; $MEMETUI_CONFIG_DIR overrides."""
    from platformdirs import user_config_dir as config_dir

    return Path(os.environ.get("MEMETUI_CONFIG_DIR") or config_dir("memetui"))


def user_data_dir() -> Path:
    """memetui's per-user data folder (history, bookmarks); $MEMETUI_DATA_DIR overrides."""
    from platformdirs import user_data_dir as data_dir

    return Path(os.environ.get("MEMETUI_DATA_DIR") or data_dir("memetui"))
