"""What to draw for result rows: the image (or its thumbnail), or why there is none; one query per page."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .db import from_db_path


class DisplayFile(NamedTuple):
    """How one row is shown."""

    path: Path
    """The image file (for imported rows, the path or URL the import recorded)."""
    thumb: Path
    """The index's thumbnail when there is one, else `path`."""
    status: str
    """'ok', 'remote' (an imported row whose image is not on this machine) or 'missing'."""
    url: str | None
    caption: str | None


def display_files(store, rows) -> list[DisplayFile]:
    """DisplayFile per embedding row, in the given order (one SQL query; one stat per row)."""
    rows = [int(r) for r in rows]
    if not rows:
        return []
    marks = ",".join("?" * len(rows))
    found = {r[0]: r[1:] for r in store.db.execute(
        "SELECT items.id, path, sha256, status, url, caption FROM items LEFT JOIN item_meta ON item_meta.id = items.id"
        f" WHERE items.id IN ({marks})", rows)}
    root = store.root
    out = []
    for row in rows:
        rel, sha, status, url, caption = found[row]
        path = root / from_db_path(rel)
        thumb = store.thumb_path(sha)
        out.append(DisplayFile(path, thumb if thumb.is_file() else path, status, url, caption))
    return out
