"""Captions and the words known about each row: caption, file and folder names, text in the image.

Captions come from two places: an imported item's `item_meta.caption`, and a `captions.jsonl`
sidecar — one JSON object per line with `path` (relative to the images root) and `caption` —
in the images root or in the index folder (the shipped sample index keeps its captions there).
An imported caption wins over the sidecar. Nothing here writes the index.
"""

from __future__ import annotations

import json
from pathlib import Path

from .db import from_db_path

SIDECAR = "captions.jsonl"


def sidecar_files(store) -> list[Path]:
    """The `captions.jsonl` files that apply to `store`: images root first, then the index folder."""
    found: list[Path] = []
    for folder in (store.root, store.path):
        try:
            file = Path(folder) / SIDECAR
            if file.is_file() and all(file.resolve() != f.resolve() for f in found):
                found.append(file)
        except OSError:
            continue
    return found


def read_sidecar(file: Path) -> dict[str, str]:
    """path -> caption of one sidecar; lines that are not objects with string `path`/`caption` are skipped."""
    out: dict[str, str] = {}
    try:
        lines = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("caption"), str):
            path = entry["path"].replace("\\", "/")
            out.setdefault(path[2:] if path.startswith("./") else path, entry["caption"])
    return out


def row_paths(store) -> dict[int, str]:
    """Published row -> its path relative to the images root (as stored)."""
    return {int(row): from_db_path(path) for row, path in
            store.db.execute("SELECT id, path FROM items WHERE id < ?", (int(store.count),))}


def captions(store) -> dict[int, str]:
    """Row -> caption for every published row that has one (imported captions, then sidecars)."""
    out: dict[int, str] = {}
    for file in sidecar_files(store):
        by_path = read_sidecar(file)
        if by_path:
            for row, path in row_paths(store).items():
                caption = by_path.get(path)
                if caption and row not in out:
                    out[row] = caption
    for row, caption in store.db.execute(
            "SELECT id, caption FROM item_meta WHERE caption IS NOT NULL AND caption != '' AND id < ?",
            (int(store.count),)):
        out[int(row)] = caption
    return out


def row_documents(store) -> list[str]:
    """Per published row: its caption, folder and file names and OCR text joined (raw; '' when none)."""
    from .ocr_text import ocr_text

    texts = captions(store)
    paths = row_paths(store)
    rows = list(range(store.count))
    ocr = ocr_text(store, rows)
    out = []
    for row in rows:
        parts = Path(paths.get(row, "")).with_suffix("").parts
        out.append(" ".join([texts.get(row, ""), *parts[-2:], ocr[row] or ""]))
    return out
