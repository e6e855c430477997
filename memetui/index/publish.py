"""Publishing a build: embeddings.f16.npy, the ANN file (hnsw.bin, or ivfpq.faiss from
ann.IVF_MIN_ROWS rows on, as `import` writes) and manifest.json derived from items.sqlite.

items.sqlite holds every embedding; the other files are derived. Each is rebuilt when it is
missing, short or disagrees with the database, verified before it replaces the old one (size,
layout, row count, tombstones), and the manifest is written last: it is the snapshot boundary,
so until it is replaced readers keep seeing the previous complete build.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple

import numpy as np

from ..atomic import atomic_path, short_write_errno
from ..errors import IndexDamagedError, IndexFormatError
from .check import embeddings_from_db, embeddings_rows, read_graph_file
from .store import EMBEDDINGS, HNSW, LIVE_STATUSES, IndexStore

log = logging.getLogger(__name__)
SPOT_CHECK_ROWS = 8
"""Rows of an existing embeddings file compared with items.sqlite before it is reused."""


class PublishResult(NamedTuple):
    """What publishing rewrote."""

    rows: int
    embeddings_written: bool
    graph_written: bool


def publish(store: IndexStore, m: int, ef_construction: int, threads: int,
            progress: Callable[[int, int], None] | None = None) -> PublishResult:
    """Bring embeddings, graph and manifest in line with items.sqlite; manifest last."""
    total, top = store.db.execute("SELECT COUNT(*), COALESCE(MAX(id) + 1, 0) FROM items").fetchone()
    if top != total:
        raise IndexDamagedError(f"items.sqlite rows are not numbered 0..{total - 1} (highest {top - 1})",
                                store.path, store.root)
    embeddings, emb_written = _publish_embeddings(store, total)
    from .ann import choose_backend

    if choose_backend(total) == "ivfpq":  # the size rule `import` follows (ann.write_ann)
        graph_written = _publish_ivf(store, embeddings, total, threads, progress)
    else:
        graph_written = _publish_graph(store, embeddings, total, m, ef_construction, threads, progress)
    manifest = store.manifest
    manifest.count = total
    manifest.hnsw.update(M=m, ef_construction=ef_construction)
    from .ann import HNSW_EF_SEARCH

    manifest.hnsw.setdefault("ef_search", HNSW_EF_SEARCH)
    if not manifest.root_abs or manifest.root_abs != str(store.root):
        manifest.root_abs = str(store.root)
    store.write_manifest()
    return PublishResult(total, emb_written, graph_written)


def _publish_embeddings(store: IndexStore, total: int) -> tuple[np.ndarray, bool]:
    """The [total, dim] embeddings, reusing the verified prefix of the existing file."""
    file = store.path / EMBEDDINGS
    try:
        rows = embeddings_rows(file, store.dim)
        existing = np.load(file, mmap_mode="r", allow_pickle=False)
    except IndexFormatError as exc:
        log.info("rebuilding %s: %s", file, exc)
        rows, existing = 0, None
    prefix = min(rows, total)
    if prefix and not _matches_db(store, existing, prefix):
        log.info("rebuilding %s: its rows differ from items.sqlite", file)
        prefix = 0
    if existing is not None and rows == total == prefix:
        return existing, False
    fresh = embeddings_from_db(store, prefix, total)
    embeddings = np.concatenate([np.asarray(existing[:prefix]), fresh]) if prefix else fresh
    store.write_embeddings(embeddings)
    return embeddings, True


def _matches_db(store: IndexStore, existing: np.ndarray, prefix: int) -> bool:
    rng = np.random.default_rng(prefix)
    rows = {0, prefix - 1, *rng.integers(0, prefix, SPOT_CHECK_ROWS).tolist()}
    marks = ",".join("?" * len(rows))
    found = dict(store.db.execute(f"SELECT id, embedding FROM items WHERE id IN ({marks})", sorted(rows)))
    return all(found.get(r) == np.asarray(existing[r], "<f2").tobytes() for r in rows)


def _publish_ivf(store: IndexStore, embeddings: np.ndarray, total: int, threads: int, progress) -> bool:
    """Extend ivfpq.faiss with rows it lacks (its lists and codebooks kept), or build it, and tune its
    probes (ivf_tuning.py); drop hnsw.bin.

    Tombstones need no rewrite: searches mask them with the live rows. The file is replaced
    atomically, so readers keep the previous one until the manifest moves on.
    """
    from .ann import write_ann
    from .ivf import IVF_FILE, extend_ivfpq
    from .ivf_tuning import retune

    file = store.path / IVF_FILE
    stage = (lambda name, done, count: progress(done, count)) if progress else None
    added = extend_ivfpq(file, embeddings, total, threads, stage) if file.is_file() else None
    if added is None:
        if file.is_file():
            log.info("rebuilding %s: it does not fit the first %d rows", file, total)
        write_ann(store, embeddings[:total], threads, stage, backend="ivfpq")  # tunes its probes
    elif added:
        retune(store.path, embeddings[:total])  # 5 % more rows or more: the search they need
    (store.path / HNSW).unlink(missing_ok=True)  # the graph of a smaller index: no longer searched
    return added != 0


def _publish_graph(store: IndexStore, embeddings: np.ndarray, total: int, m: int, ef_construction: int,
                   threads: int, progress) -> bool:
    """Extend or rebuild hnsw.bin so it holds rows 0..total-1 with the database's tombstones."""
    from .ann import add_to_hnsw, load_hnsw, new_hnsw

    file = store.path / HNSW
    tombstones = {r for (r,) in store.db.execute(
        f"SELECT id FROM items WHERE status NOT IN ({','.join('?' * len(LIVE_STATUSES))})", LIVE_STATUSES)}
    graph, start, marked = None, 0, set()
    if file.is_file():
        try:
            found = read_graph_file(file, store.dim)
            if found.rows <= total and found.covers(found.rows):
                if found.rows == total and found.deleted_rows() == tombstones:
                    return False
                graph = load_hnsw(file, store.dim, found.rows)
                graph.resize_index(max(total, 1))
                start, marked = found.rows, found.deleted_rows()
        except IndexFormatError as exc:
            log.info("rebuilding %s: %s", file, exc)
    if graph is None:
        graph = new_hnsw(store.dim, total, m, ef_construction)
    add_to_hnsw(graph, embeddings, start, threads, progress)
    for row in tombstones - marked:
        graph.mark_deleted(row)
    for row in marked - tombstones:
        graph.unmark_deleted(row)

    def verify(tmp) -> None:
        """Raise OSError unless the written file holds rows 0..total-1 with the database's tombstones."""
        try:
            written = read_graph_file(tmp, store.dim)
            whole = written.covers(total) and written.deleted_rows() == tombstones
        except IndexFormatError as exc:
            raise OSError(short_write_errno(tmp), f"{HNSW} not written whole ({exc})", str(tmp)) from None
        if not whole:
            raise OSError(short_write_errno(tmp), f"{HNSW} written with the wrong rows", str(tmp))

    with atomic_path(file, verify=verify) as tmp:
        graph.save_index(str(tmp))
    return True
