"""ANN backends behind one interface: IVF-PQ recall vs exact, save -> reload, tombstones, choice by size."""

from __future__ import annotations

import numpy as np
import pytest

from memetui.index.ann import EXACT_MAX_ROWS, IVF_MIN_ROWS, AnnSearcher, choose_backend, write_ann
from memetui.index.ivf import IVF_FILE, IvfParams, load_ivfpq
from memetui.index.store import IndexStore, ModelInfo
from memetui.errors import IndexFormatError


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 200 clusters sharing a mean direction (CLIP-like)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dim)).astype(np.float32)
    x = centres[rng.integers(0, 200, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mean = rng.standard_normal(dim).astype(np.float32)
    x += mean / np.linalg.norm(mean)  # random pairs have cosine ~0.5, as in CLIP
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


SMALL = IvfParams(nlist=128, m=16, nprobe=16, rerank=500, train_rows=8_192, pq_train_rows=2_560)
"""Small enough to train in a second or two on a busy CPU."""


def make_store(path, data: np.ndarray, status=None) -> IndexStore:
    """An index folder over `data` with one item row per embedding row."""
    store = IndexStore.create(path, ModelInfo("synthetic", None, data.shape[1], "0" * 64), ".")
    store.write_embeddings(data)
    status = status or ["ok"] * len(data)
    with store.db:
        store.db.executemany(
            "INSERT INTO items (id, path, sha256, status, embedding) VALUES (?, ?, ?, ?, x'')",
            ((i, f"{i}.png", f"{i:064x}", s) for i, s in enumerate(status)),
        )
    store.manifest.count = len(data)
    store.write_manifest()
    return IndexStore.open(path)


def steered_queries(data: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Image + 0.5 x another image + noise: off-manifold queries like a stepped query."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(data), (2, count))
    noise = 0.05 * rng.standard_normal((count, data.shape[1])).astype(np.float32)
    return data[a].astype(np.float32) + 0.5 * data[b].astype(np.float32) + noise


@pytest.fixture(scope="module")
def ivf_store(tmp_path_factory):
    data = clustered(20_000, 32)
    store = make_store(tmp_path_factory.mktemp("ivf") / "index", data)
    assert write_ann(store, store.embeddings, backend="ivfpq", ivf_params=SMALL) == "ivfpq"
    return store


def test_ivfpq_recall_at_10_matches_exact_search_on_steered_queries(ivf_store):
    ivf = AnnSearcher(ivf_store, backend="ivfpq", ivf_params=SMALL)
    exact = AnnSearcher(ivf_store, exact=True)
    assert ivf.backend == "ivfpq" and exact.backend == "exact"
    recalls = []
    for q in steered_queries(np.asarray(ivf_store.embeddings), 100):
        got, truth = ivf.search(q, 10), exact.search(q, 10)
        recalls.append(len(set(got.rows) & set(truth.rows)) / 10)
        np.testing.assert_allclose(got.scores, np.sort(got.scores)[::-1])  # best first, exact scores
    assert np.mean(recalls) >= 0.99


def test_ivfpq_file_reloads_to_identical_results(ivf_store):
    first = AnnSearcher(ivf_store, backend="ivfpq", ivf_params=SMALL)
    reopened = AnnSearcher(IndexStore.open(ivf_store.path), ivf_params=SMALL)  # backend picked from the files present
    assert reopened.backend == "ivfpq"
    for q in steered_queries(np.asarray(ivf_store.embeddings), 20, seed=7):
        a, b = first.search(q, 10), reopened.search(q, 10)
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_ivfpq_file_is_mapped_not_read_and_answers_as_a_read_copy(ivf_store):
    import faiss

    mapped = load_ivfpq(ivf_store.path / IVF_FILE, 32, len(ivf_store.embeddings))
    read = faiss.read_index(str(ivf_store.path / IVF_FILE))
    queries = steered_queries(np.asarray(ivf_store.embeddings), 20, seed=5)
    for index in (mapped, read):
        faiss.extract_index_ivf(index).nprobe = 16
    a, b = mapped.search(queries, 50), read.search(queries, 50)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_ivfpq_file_with_fewer_rows_is_refused(ivf_store):
    with pytest.raises(IndexFormatError, match="expected 20001"):
        load_ivfpq(ivf_store.path / IVF_FILE, 32, 20_001)
    assert load_ivfpq(ivf_store.path / IVF_FILE, 32, 19_999).ntotal == 20_000  # rows not published yet: served later


def test_ivfpq_skips_tombstoned_rows_and_serves_remote_rows(tmp_path):
    data = clustered(3_000, 16, seed=3)
    status = ["remote" if i % 2 else "ok" for i in range(len(data))]
    status[0] = status[2] = "missing"
    store = make_store(tmp_path / "index", data, status)
    write_ann(store, store.embeddings, backend="ivfpq", ivf_params=SMALL)
    ann = AnnSearcher(store, backend="ivfpq", ivf_params=SMALL)
    hits = ann.search(data[0].astype(np.float32), 10)
    assert 0 not in hits.rows and 2 not in hits.rows
    assert any(r % 2 for r in hits.rows)  # 'remote' rows are searchable


def test_backend_is_chosen_by_size():
    assert choose_backend(EXACT_MAX_ROWS) == "exact"
    assert choose_backend(EXACT_MAX_ROWS + 1) == "hnsw"
    assert choose_backend(IVF_MIN_ROWS) == "ivfpq"
    # 288-byte codes, fp16 centroids
    assert IvfParams().for_shape(1_000_000, 1152).factory == "IVF4096(SQfp16),PQ576x4fs"
    assert IvfParams().for_shape(1_000_000, 1152).nprobe == 448
    assert IvfParams().for_shape(250_000, 1152).factory == "IVF2048(SQfp16),PQ576x4fs"  # lists ~ 4·sqrt(rows)
    assert IvfParams().for_shape(250_000, 1152).nprobe == 224  # the same share of the lists
    assert IvfParams().for_shape(10_000, 100).m == 50  # m divides the dimension, 2-d sub-vectors
    assert IvfParams(m=96, bits=8).for_shape(10_000, 100).m == 25  # 8-bit codes: sub-vectors >= 4 dims
    assert IvfParams(m=96, bits=8).for_shape(1_000_000, 1152).factory == "IVF4096(SQfp16),PQ96"


def test_rerank_rows_are_the_exact_fp16_rows_widened(tmp_path):
    import sys

    from memetui.index.ivf import rows_float32

    data = clustered(500, 24, seed=9)
    np.save(tmp_path / "e.npy", data)
    mapped = np.load(tmp_path / "e.npy", mmap_mode="r")
    rows = np.array([0, 3, 4, 250, 499])
    expected = data[rows].astype(np.float32)
    assert rows_float32(mapped, rows).tobytes() == expected.tobytes()  # torch's widening, when loaded
    torch = sys.modules.pop("torch", None)
    try:
        assert rows_float32(mapped, rows).tobytes() == expected.tobytes()  # numpy's (the CLI)
    finally:
        if torch is not None:
            sys.modules["torch"] = torch


def test_an_index_built_with_other_lists_is_probed_at_the_same_share_of_them():
    base = IvfParams()
    shaped = base.for_shape(1_000_000, 1152)
    assert base.for_index(1_000_000, 1152, 4096) == shaped
    older = base.for_index(1_000_000, 1152, 1024)  # an index written by the 1,024-list default
    assert (older.nlist, older.nprobe, older.rerank) == (1024, 112, shaped.rerank)


def test_list_at_a_time_scan_finds_what_faiss_own_choice_finds(ivf_store):
    """`IvfParams.scan` only changes how faiss walks the lists: the same top 10, the same exact scores."""
    import dataclasses

    ours = AnnSearcher(ivf_store, backend="ivfpq", ivf_params=SMALL)
    faiss_choice = AnnSearcher(IndexStore.open(ivf_store.path), backend="ivfpq",
                               ivf_params=dataclasses.replace(SMALL, scan=0))
    assert ours._ivf.params.scan == 11 and faiss_choice._ivf.params.scan == 0
    for q in steered_queries(np.asarray(ivf_store.embeddings), 50, seed=3):
        a, b = ours.search(q, 10), faiss_choice.search(q, 10)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_settled_rerank_keeps_the_top_10_of_rescoring_every_candidate(ivf_store):
    """Rescoring best-first and stopping once the rest cannot reach the 10th score loses nothing here."""
    from memetui.index.ivf import exact_rerank

    searcher = AnnSearcher(ivf_store, backend="ivfpq", ivf_params=SMALL)._ivf
    embeddings = np.asarray(ivf_store.embeddings)
    same = 0
    queries = steered_queries(embeddings, 100, seed=5)
    for q in queries:
        rows, approx = searcher.candidates(q, 500)
        assert np.all(np.diff(approx) <= 0)  # best first
        kept, exact = exact_rerank(embeddings, rows, approx, q, 10, settle=1.5, block=32)
        every, every_exact = exact_rerank(embeddings, rows, approx, q, 10, settle=0)
        assert len(every) == len(rows) and set(kept) <= set(rows)
        same += set(kept[np.argsort(-exact)[:10]]) == set(every[np.argsort(-every_exact)[:10]])
    assert same >= 0.98 * len(queries)  # (32-d codes err too much here to stop early: the next test stops)


def test_settled_rerank_stops_after_the_first_block_when_the_rest_score_far_lower():
    from memetui.index.ivf import exact_rerank

    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((1_000, 16)).astype(np.float16)
    query = rng.standard_normal(16).astype(np.float32)
    truth = embeddings.astype(np.float32) @ query
    rows = np.argsort(-truth)  # best first, as a PQ index would rank them
    approx = truth[rows] + rng.uniform(-0.01, 0.01, len(rows)).astype(np.float32)  # small PQ errors
    kept, exact = exact_rerank(embeddings, rows, approx, query, 10, settle=1.5, block=64)
    assert len(kept) < 1_000 and len(kept) % 64 == 0
    np.testing.assert_array_equal(np.sort(kept[np.argsort(-exact)[:10]]), np.sort(rows[:10]))
    flat = np.full(len(rows), approx[0], np.float32)  # no gap at all: every candidate is rescored
    assert len(exact_rerank(embeddings, rows, flat, query, 10, settle=1.5, block=64)[0]) == 1_000


def test_searchers_sharing_one_faiss_index_keep_their_own_probes(ivf_store):
    """nprobe lives on the faiss index: each searcher sets its own before it searches."""
    import dataclasses

    from memetui.index.ivf import IvfPqSearcher

    index = AnnSearcher(ivf_store, backend="ivfpq", ivf_params=SMALL)._ivf.index
    embeddings = np.asarray(ivf_store.embeddings)
    few = IvfPqSearcher(index, embeddings, dataclasses.replace(SMALL, nprobe=1, settle=0))
    q = steered_queries(embeddings, 1, seed=11)[0]
    alone = few.search(q, 10)
    IvfPqSearcher(index, embeddings, dataclasses.replace(SMALL, nprobe=128)).search(q, 10)  # every list
    again = few.search(q, 10)
    np.testing.assert_array_equal(alone[0], again[0])
    assert few.candidates(q, 5_000)[0].size < 5_000 / 2  # one list of 128 holds ~156 rows, not all 20,000
