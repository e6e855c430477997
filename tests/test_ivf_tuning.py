"""IVF-PQ probes tuned on the index's own rows: raised until recall@10 reaches 0.99, saved, used, ignored when stale."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from memetui.index.ann import AnnSearcher, describe_ann, write_ann
from memetui.index.ivf_tuning import TUNING_FILE, exact_top, load_tuning, tuning_queries
from memetui.index.store import IndexStore

from test_ann_ivf import SMALL, make_store


def low_contrast(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Sparse sums of 4 of 512 atoms over a shared mean: no clusters for the lists to follow."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((512, dim)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    mean = rng.standard_normal(dim).astype(np.float32)
    x = atoms[rng.integers(0, 512, (n, 4))].sum(1) + mean / np.linalg.norm(mean)
    x += 0.1 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def recall(searcher: AnnSearcher, embeddings: np.ndarray, queries: np.ndarray) -> float:
    """Mean recall@10 of `searcher` against exact search."""
    truth = exact_top(embeddings, queries)
    return float(np.mean([len(set(searcher.search(q, 10).rows) & set(t)) / 10 for q, t in zip(queries, truth)]))


def test_probes_are_raised_until_the_index_reaches_its_recall_on_its_own_rows(tmp_path):
    data = low_contrast(20_000, 32)
    few_probes = dataclasses.replace(SMALL, nprobe=2)  # 2 of 128 lists: far too few for this data
    store = make_store(tmp_path / "index", data)
    assert write_ann(store, store.embeddings, backend="ivfpq", ivf_params=few_probes) == "ivfpq"
    tuning = load_tuning(store.path, 128)
    assert tuning is not None and tuning.nprobe > 2 and tuning.recall >= 0.99
    first, *_ = tuning.tried.items()
    assert first == (f"2/{SMALL.rerank}", first[1]) and first[1] < 0.99  # where the ladder started
    assert tuning.tried[f"{tuning.nprobe}/{tuning.rerank}"] == tuning.recall >= 0.99
    fresh = np.concatenate(list(tuning_queries(data, 200, seed=99).values()))  # queries the tuning did not see
    untuned = AnnSearcher(IndexStore.open(store.path), backend="ivfpq", ivf_params=few_probes)
    tuned = AnnSearcher(IndexStore.open(store.path), backend="ivfpq")  # no params: the saved tuning's probes
    assert (tuned._ivf.params.nprobe, tuned._ivf.params.rerank) == (tuning.nprobe, tuning.rerank)
    assert recall(tuned, data, fresh) >= 0.98 > recall(untuned, data, fresh)
    assert f"nprobe {tuning.nprobe} (tuned on its rows" in describe_ann(IndexStore.open(store.path))


def test_a_tuning_that_is_stale_or_damaged_is_ignored(tmp_path):
    file = tmp_path / TUNING_FILE
    file.write_text(json.dumps({"nlist": 64, "count": 10, "nprobe": 8, "rerank": 300, "recall": 0.99,
                                "target": 0.99, "tried": {"8/300": 0.99}}))
    assert load_tuning(tmp_path, 64).params().nprobe == 8 and load_tuning(tmp_path, 64).params().rerank == 300
    assert load_tuning(tmp_path, 128) is None  # written for an index of other lists
    file.write_text('{"nlist": 64, "nprobe": ')
    assert load_tuning(tmp_path, 64) is None
    file.write_text(json.dumps({"nlist": 64, "count": 10, "nprobe": 65, "rerank": 300, "recall": 1, "target": 0.99,
                                "tried": {}}))
    assert load_tuning(tmp_path, 64) is None  # more probes than lists


def test_an_extended_index_is_retuned_once_it_has_grown_by_a_twentieth(tmp_path):
    from memetui.index.ivf import IVF_FILE, extend_ivfpq
    from memetui.index.ivf_tuning import retune

    data = low_contrast(12_000, 32, seed=3)
    store = make_store(tmp_path / "index", data[:10_000])
    write_ann(store, store.embeddings, backend="ivfpq", ivf_params=SMALL)
    first = load_tuning(store.path, 128)
    assert first.count == 10_000
    extend_ivfpq(store.path / IVF_FILE, data, 10_400)
    assert retune(store.path, data[:10_400]) == first == load_tuning(store.path, 128)  # 4 % more: kept
    extend_ivfpq(store.path / IVF_FILE, data, 12_000)
    again = retune(store.path, data)
    assert again.count == 12_000 and load_tuning(store.path, 128) == again  # 20 % more: measured anew
