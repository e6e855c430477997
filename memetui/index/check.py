"""Is an index's derived data whole? Reads hnsw.bin's layout and compares the files with items.sqlite.

The derived files (embeddings.f16.npy, hnsw.bin, the manifest's count) can always be rebuilt
from items.sqlite, which holds every embedding. `index_problems` says what is wrong in words;
a build repairs all of it (publish.py).
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import IndexFormatError

_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
"""hnswlib (0.7-0.8) saveIndex header: offsetLevel0, max_elements, cur_element_count,
size_data_per_element, label_offset, offsetData, maxlevel, enterpoint, maxM, maxM0, M, mult,
ef_construction."""
_DELETE_MARK = 0x01


class GraphFile(NamedTuple):
    """What an hnsw.bin holds, read without loading the graph."""

    rows: int
    """Number of elements."""
    labels: np.ndarray
    """[rows] uint64 label (= embedding row) of each element."""
    deleted: np.ndarray
    """[rows] bool: element marked deleted (a tombstoned row)."""
    size: int
    """File size in bytes (exactly what the layout implies)."""

    def deleted_rows(self) -> set[int]:
        """Rows (labels) marked deleted."""
        return set(self.labels[self.deleted].tolist())

    def covers(self, rows: int) -> bool:
        """True when the graph's labels are exactly 0..rows-1."""
        return self.rows == rows and bool(np.array_equal(np.sort(self.labels), np.arange(rows, dtype=np.uint64)))


def read_graph_file(path: Path, dim: int) -> GraphFile:
    """Parse hnsw.bin's layout and check its size; raise IndexFormatError when short or corrupt."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < _HEADER.size:
                raise IndexFormatError(f"{path.name} is short ({size} bytes)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _parse(mm, size, dim, path)
    except OSError as exc:
        raise IndexFormatError(f"cannot read {path.name}: {exc.strerror or exc}") from None


def _parse(mm, size: int, dim: int, path: Path) -> GraphFile:
    (offset0, _, count, per_element, label_offset, data_offset, _, _, _, _, _, _, _) = _HEADER.unpack_from(mm, 0)
    if per_element < data_offset + 4 * dim or label_offset + 8 > per_element or offset0 != 0:
        raise IndexFormatError(f"{path.name} is not an hnswlib graph of dimension {dim}")
    pos = _HEADER.size + count * per_element
    if pos > size:
        raise IndexFormatError(f"{path.name} is short: {size:,} bytes, its {count:,} rows need more")
    unpack = struct.Struct("<I").unpack_from
    for _ in range(count):  # per element: uint32 size of its upper-level links, then the links
        if pos + 4 > size:
            raise IndexFormatError(f"{path.name} is short: {size:,} bytes, cut inside its link lists")
        pos += 4 + unpack(mm, pos)[0]
    if pos != size:
        raise IndexFormatError(f"{path.name} is {'short' if pos > size else 'too long'}: {size:,} bytes, layout {pos:,}")
    level0 = np.frombuffer(mm, np.uint8, count * per_element, _HEADER.size).reshape(count, per_element)
    labels = level0[:, label_offset : label_offset + 8].copy().view("<u8").reshape(count)
    deleted = (level0[:, 2] & _DELETE_MARK).astype(bool)
    del level0
    return GraphFile(int(count), labels, deleted, size)


def embeddings_rows(path: Path, dim: int) -> int:
    """Rows of a well-formed [N, dim] float16 embeddings file; raise IndexFormatError otherwise."""
    try:
        emb = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise IndexFormatError(f"{path.name} is missing") from None
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{path.name} is unreadable or short ({exc})") from None
    if emb.ndim != 2 or emb.shape[1] != dim or emb.dtype != np.float16:
        raise IndexFormatError(f"{path.name}: expected [N, {dim}] float16, found {emb.shape} {emb.dtype}")
    return int(emb.shape[0])


def index_problems(store) -> list[str]:
    """What is wrong with `store`'s derived files, in words ([] when whole).

    Rows embedded past the manifest's count (a build running or interrupted) are not a problem:
    readers do not see them until a build publishes them.
    """
    from .ann import EXACT_MAX_ROWS
    from .store import EMBEDDINGS, HNSW

    problems = []
    items = store.items_count()
    if items < store.count:
        problems.append(f"the manifest counts {store.count:,} rows but items.sqlite holds {items:,}")
    try:
        rows = embeddings_rows(store.path / EMBEDDINGS, store.dim)
        if rows < store.count:
            problems.append(f"{EMBEDDINGS} holds {rows:,} rows, the manifest {store.count:,}")
    except IndexFormatError as exc:
        problems.append(str(exc))
    graph = store.path / HNSW
    if graph.is_file():
        try:
            found = read_graph_file(graph, store.dim)
            if found.rows < store.count:
                problems.append(f"{HNSW} holds {found.rows:,} rows, the manifest {store.count:,}")
        except IndexFormatError as exc:
            problems.append(str(exc))
    elif store.count > EXACT_MAX_ROWS and not any(store.path.glob("*.faiss")):  # exact search or IVF-PQ serve it
        problems.append(f"{HNSW} is missing")
    if not store.root_found():
        problems.append(f"the images folder {os.fsdecode(store.root)} is not there (the index or its images moved)")
    return problems


def embeddings_from_db(store, start: int = 0, stop: int | None = None) -> np.ndarray:
    """[stop - start, dim] float16 rows rebuilt from items.sqlite (zeros where a row has no item)."""
    stop = store.count if stop is None else stop
    out = np.zeros((max(stop - start, 0), store.dim), np.float16)
    width = 2 * store.dim
    for row, blob in store.db.execute("SELECT id, embedding FROM items WHERE id >= ? AND id < ?", (start, stop)):
        if blob is not None and len(blob) == width:
            out[row - start] = np.frombuffer(blob, "<f2")
    return out
