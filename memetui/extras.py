"""Optional dependency groups: import a module of an extra lazily, or say in one line which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

SCALE_EXTRA = "scale"
"""`memetui[scale]`: ray[data], pymilvus, milvus-lite (embedding on Ray, vectors in Milvus)."""


def require(module: str, feature: str, extra: str = SCALE_EXTRA) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming `feature` and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the optional extra [{extra}] ({exc.name or module} is not installed):"
            f" pip install 'memetui[{extra}]'"
        ) from None
