"""Session: steering state, undo/redo, caches, lazy CLIP, SAE fit, timings (no terminal)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memetui.errors import QueryError, SAEError
from memetui.search import Session
from memetui.steer.directions import SAEDirections
from memetui.steer.query import DirectionRef, Query, Term


def random_sae(dim: int, n: int = 256, k: int = 8, seed: int = 0, labels=None) -> SAEDirections:
    """A random top-k SAE (unit decoder columns, W_enc a copy of W_dec.T)."""
    rng = np.random.default_rng(seed)
    w_dec = rng.standard_normal((dim, n)).astype(np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=0, keepdims=True)
    return SAEDirections(w_dec.T.copy(), 0.01 * rng.standard_normal(n), 0.01 * rng.standard_normal(dim), w_dec,
                         k=k, scale=0.5, labels=labels)


@pytest.fixture
def index_path(tiny_index):
    return tiny_index(24)


@pytest.fixture
def session(index_path):
    from memetui.index.store import IndexStore

    store = IndexStore.open(index_path)
    return Session(store, device="cpu", sae=random_sae(store.dim))


def test_image_rows_search_without_loading_clip(session):
    session.add_image(3)
    results = session.results(5)
    assert results[0].row == 3 and len(results) == 5
    assert session.active_directions(4)
    assert not session.embedder_loaded
    assert session.timings.search_ms >= 0


def test_text_term_loads_clip_lazily(session):
    assert not session.embedder_loaded
    session.set_text("a red square")
    assert session.embedder_loaded
    assert [t.kind for t in session.query.terms] == ["text"]
    session.set_text("blue")
    assert [t.value for t in session.query.terms] == ["blue"]


def test_undo_after_steps_restores_bitwise_equal_vector(session):
    session.add_image(0)
    session.add_image(5, weight=-0.5)
    before = session.vector().copy()
    vectors = [before]
    for mode, sign in [("sae", 1), ("sae", 1), ("pca", -1), ("random", 1), ("sae", -1)]:
        session.set_mode(mode)
        session.select_direction(session.active_directions(3)[-1].id)
        session.step(sign)
        vectors.append(session.vector().copy())
    for expected in reversed(vectors[:-1]):
        assert session.undo()
        fresh = session.query.vector(session)  # recomputed, not the cache
        assert fresh.tobytes() == expected.tobytes()
    assert len(session.query.terms) == 2 and not session.query.direction_terms()
    for expected in vectors[1:]:
        assert session.redo()
        assert session.query.vector(session).tobytes() == expected.tobytes()
    assert not session.redo()


def test_steps_on_one_direction_merge_into_one_term(session):
    session.add_image(2)
    session.set_mode("pca")
    ref = session.select_direction(0)
    norm0 = float(np.linalg.norm(session.vector()))
    session.step(+1)
    norm1 = float(np.linalg.norm(session.vector()))
    session.step(+1)
    terms = session.query.direction_terms()
    assert list(terms) == [ref]
    assert terms[ref].steps == 2
    assert terms[ref].weight == pytest.approx(session.step_size * (norm0 + norm1))


def test_step_size_keys_and_mode_cycle(session):
    alpha = session.step_size
    assert session.grow_step() > alpha
    session.shrink_step()
    assert session.step_size == pytest.approx(alpha)
    assert session.mode == "sae"
    assert [session.cycle_mode(), session.cycle_mode(), session.cycle_mode()] == ["pca", "random", "sae"]


def test_mode_cycle_skips_sae_without_one(index_path):
    session = Session.open(index_path, sae=False)
    assert session.modes == ("pca", "random")
    assert session.mode == "pca"
    assert session.cycle_mode() == "random" and session.cycle_mode() == "pca"
    with pytest.raises(QueryError):
        session.set_mode("sae")


def test_new_random_direction_is_selected(session):
    session.add_image(1)
    first = session.new_random_direction()
    second = session.new_random_direction()
    assert session.mode == "random" and session.selected == DirectionRef("random", second.id)
    assert second.id != first.id
    assert session.active_directions(2)[0].id == second.id


def test_active_sae_features_equal_topk_of_encoding(session):
    session.add_image(4)
    session.add_image(7, weight=0.5)
    session.select_direction(3)
    session.step(+1)
    q = session.vector()
    sae = session.sae
    x = q / np.linalg.norm(q) * sae.input_norm
    pre = np.maximum(sae.project(x) / sae.scale + sae._offset, 0)  # direct encoder formula
    expected = np.argsort(-pre)[: sae.k]
    active = session.active_directions(sae.k)
    assert [a.id for a in active] == [int(j) for j in expected if pre[j] > 0]
    np.testing.assert_allclose([a.value for a in active], pre[[a.id for a in active]], rtol=1e-4, atol=1e-5)


def test_results_for_snapshot_and_cache(session):
    session.add_image(6)
    snapshot = session.query
    first = session.results(5, query=snapshot)
    session.add_image(9)
    assert session.results(5, query=snapshot) == first
    assert session.results(5) != first or session.query != snapshot


def test_empty_query_gives_no_results(session):
    assert session.results(5) == []
    assert session.active_directions(5) == []
    with pytest.raises(QueryError):
        session.add_image(10_000)


def test_query_file_round_trip(session, tmp_path):
    session.add_image(0)
    session.select_direction(1)
    session.step(+1)
    path = tmp_path / "q.json"
    session.save_query(path)
    vector = session.vector().copy()
    session.clear()
    session.load_query(path)
    assert session.query.vector(session).tobytes() == vector.tobytes()
    session.save_history(tmp_path / "h.json")
    other = Session.open(session.store.path, sae=session.sae)
    other.load_history(tmp_path / "h.json")
    assert other.query == session.query and other.can_undo


def test_malformed_query_file_raises_query_error(session, tmp_path):
    bad = tmp_path / "bad.json"
    for text in ["{", "[]", '{"terms": [{"kind": "video"}]}', '{"terms": [{"kind": "text", "weight": "x", "text": "a"}]}']:
        bad.write_text(text)
        with pytest.raises(QueryError):
            session.load_query(bad)


def test_sae_that_does_not_fit_is_refused(index_path):
    from memetui.index.store import IndexStore

    store = IndexStore.open(index_path)
    with pytest.raises(SAEError):
        Session(store, sae=random_sae(store.dim + 1))
    with pytest.raises(SAEError):
        Session(store, sae="nonexistent")


def test_bookmark_and_export(session, tmp_path):
    session.add_image(2)
    name = session.bookmark("two", path=tmp_path / "b.json")
    assert session.bookmarks(tmp_path / "b.json")[name] == session.query
    out = session.export(tmp_path / "e.json", k=3)
    data = json.loads(out.read_text())
    assert len(data["results"]) == 3 and data["query"]["terms"][0]["row"] == 2


def test_labels_with_control_characters_are_escaped(index_path):
    from memetui.index.store import IndexStore

    store = IndexStore.open(index_path)
    labels = {j: f"evil\x1b]52;c;aGk=\x07 \x9b2J {j}" for j in range(256)}
    session = Session(store, sae=random_sae(store.dim, labels=labels))
    session.add_image(0)
    for active in session.active_directions(8):
        assert all(ch.isprintable() for ch in active.label), active.label
        assert "\\x1b" in active.label
    assert "\x1b" not in session.direction_label(("sae", 0))


def test_compare_scores_every_provider_with_intervals(session):
    from memetui.steer.compare import CompareOptions, compare

    report = compare(session, CompareOptions(directions=8, starts=6, per_start=2, bootstrap=200))
    assert [p.provider for p in report.providers] == ["sae", "pca", "random"]
    for p in report.providers:
        for iv in (p.coherence, p.top10_change, p.feature_share):
            assert iv.low <= iv.mean <= iv.high and iv.n > 0
        assert 0 <= p.top10_change.mean <= 1 and 0 <= p.feature_share.mean <= 1
    assert set(report.to_dict()["providers"]) == {"sae", "pca", "random"}


def test_compare_command_prints_table_and_writes_json(index_path, tmp_path, capsys):
    from memetui.cli import main

    out = tmp_path / "compare.json"
    assert main(["compare", str(index_path), "--directions", "4", "--starts", "4", "--bootstrap", "50",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "coherence" in printed and "pca" in printed and "random rows" in printed
    data = json.loads(out.read_text())
    assert set(data["providers"]) == {"pca", "random"} and data["providers"]["pca"]["feature_share"] is None


def write_sae_files(folder, name, dim, n=64, k=4, sha=None, seed=0):
    """A real TopKSAE checkpoint (NAME.safetensors + NAME.json) with a hostile label on latent 0."""
    from memetui.sae.model import TopKSAE

    labels = [["zero\x1b[2J"]] + [[f"w{i}"] for i in range(1, n)]
    sae = TopKSAE(dim, n, k, meta={"model": {"sha256": sha}} if sha else {}, labels=labels, seed=seed)
    sae.save(folder / name)


def test_index_sae_files_load_and_misfits_are_refused(index_path):
    from memetui.index.store import IndexStore

    store = IndexStore.open(index_path)
    write_sae_files(store.sae_dir, "good", store.dim, sha=store.model.sha256)
    session = Session(store)
    assert session.mode == "sae" and session.sae.n_latents == 64
    assert session.direction_label(("sae", 0)) == "zero\\x1b[2J"
    write_sae_files(store.sae_dir, "wide", store.dim + 8)
    with pytest.raises(SAEError, match="has dimension"):
        Session(store, sae="wide")
    write_sae_files(store.sae_dir, "other", store.dim, sha="f" * 64)
    with pytest.raises(SAEError, match="was trained on model"):
        Session(store, sae="other")


def test_cached_results_only_returns_what_results_computed(tiny_index):
    from memetui.search import Session

    session = Session.open(tiny_index(), device="cpu")
    session.add_image(0)
    assert session.cached_results(8) is None
    found = session.results(8, record=False)
    assert session.cached_results(8) == found and session.cached_results(9) is None
