"""`memetui index`'s publish step writes the ANN file `import` would: HNSW below ann.IVF_MIN_ROWS,
IVF-PQ from there on (extended in place when rows are added), and `info` names the one searched."""

from __future__ import annotations

import numpy as np
import pytest

from memetui.index import ann
from memetui.index.ann import AnnSearcher, describe_ann
from memetui.index.ivf import IVF_FILE
from memetui.index.publish import publish
from memetui.index.store import HNSW, IndexStore, ModelInfo

from test_ann_ivf import clustered


def add_items(store: IndexStore, data: np.ndarray, start: int) -> None:
    """Item rows start.. with their embeddings in items.sqlite (what a build commits before publishing)."""
    with store.db:
        store.db.executemany(
            "INSERT INTO items (id, path, sha256, status, embedding) VALUES (?, ?, ?, 'ok', ?)",
            ((start + i, f"{start + i}.png", f"{start + i:064x}", row.astype("<f2").tobytes())
             for i, row in enumerate(data)))


@pytest.fixture
def small_ivf_threshold(monkeypatch):
    """HNSW from 1,000 rows, IVF-PQ from 3,000 (really 10,000 and 250,000: too many rows for a test)."""
    monkeypatch.setattr(ann, "EXACT_MAX_ROWS", 1_000)
    monkeypatch.setattr(ann, "IVF_MIN_ROWS", 3_000)


def test_index_above_the_threshold_publishes_ivfpq_then_extends_it(tmp_path, small_ivf_threshold):
    data = clustered(4_000, 32, seed=2)
    store = IndexStore.create(tmp_path / "index", ModelInfo("synthetic", None, 32, "0" * 64), ".")
    add_items(store, data[:2_000], 0)
    publish(store, 8, 40, 2)
    assert (store.path / HNSW).is_file() and not (store.path / IVF_FILE).is_file()
    assert describe_ann(IndexStore.open(store.path)).startswith("hnsw: ")

    add_items(store, data[2_000:3_500], 2_000)
    assert publish(store, 8, 40, 2).graph_written
    assert (store.path / IVF_FILE).is_file() and not (store.path / HNSW).is_file()
    reader = IndexStore.open(store.path)
    assert AnnSearcher(reader).backend == "ivfpq"
    assert describe_ann(reader).startswith("ivfpq: ivfpq.faiss")

    built = (store.path / IVF_FILE).stat().st_mtime_ns
    add_items(store, data[3_500:], 3_500)
    assert publish(store, 8, 40, 2).graph_written  # extended: same lists and codebooks, 500 rows more
    assert (store.path / IVF_FILE).stat().st_mtime_ns != built
    reader = IndexStore.open(store.path)
    searcher = AnnSearcher(reader)
    assert searcher.backend == "ivfpq" and reader.count == 4_000
    hits = searcher.search(data[3_900].astype(np.float32), 5)
    assert hits.rows[0] == 3_900
    assert not publish(store, 8, 40, 2).graph_written  # nothing new: nothing rewritten


def test_info_names_the_backend_searched(tmp_path, small_ivf_threshold, capsys):
    from memetui.cli import main

    store = IndexStore.create(tmp_path / "index", ModelInfo("synthetic", None, 32, "0" * 64), ".")
    add_items(store, clustered(3_200, 32, seed=4), 0)
    publish(store, 8, 40, 2)
    assert main(["info", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "ann      ivfpq: ivfpq.faiss" in out and "hnsw" not in out
