"""Session: steering state, undo/redo, caches, lazy CLIP, SAE fit, timings (no terminal)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memetui.errors import MemetuiError, QueryError, SAEError
from memetui.session import Session, library
from memetui.steer.parse import parse_typed
from memetui.steer.query import NORM_LIMIT, DirectionRef, Query, Term
from memetui.steer.sae_directions import SAEDirections


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
    page = session.results(5)
    assert page.results[0].row == 3 and len(page.results) == 5
    assert page.results[0].thumbnail.is_file()
    assert session.active_directions(4)
    assert session.terms.device_label is None  # CLIP never loaded


def test_text_term_loads_clip_lazily(session):
    assert session.terms.device_label is None
    session.set_query(session.query.set_text("a red square"))
    assert session.terms.device_label == "cpu"
    assert [t.kind for t in session.query.terms] == ["text"]
    session.set_query(session.query.set_text("blue"))
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
        fresh = session.query.vector(session.terms)  # recomputed, not the cache
        assert fresh.tobytes() == expected.tobytes()
    assert len(session.query.terms) == 2 and not session.query.direction_terms()
    for expected in vectors[1:]:
        assert session.redo()
        assert session.query.vector(session.terms).tobytes() == expected.tobytes()
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


def test_hundreds_of_steps_stay_finite_and_keep_the_ranking_scale_free(session):
    session.add_image(2)
    session.select_direction(5)
    for _ in range(400):
        session.step(+1)
    q = session.vector()
    assert np.isfinite(q).all() and float(np.linalg.norm(q)) <= NORM_LIMIT * (1 + session.step_size) + 1
    assert all(abs(t.weight) < 1e4 for t in session.query.terms)
    rescaled = session.query.scaled(1 / 7.0)  # the rescaling the session applies keeps the ranking
    assert [r.row for r in session.results(5).results] == [r.row for r in session.results(5, rescaled).results]
    assert 5 in [a.id for a in session.active_directions(8)]


def test_step_size_keys_and_mode_cycle(session):
    alpha = session.step_size
    assert session.scale_step(True) > alpha
    session.scale_step(False)
    assert session.step_size == pytest.approx(alpha)
    assert session.mode == "sae"
    assert [session.cycle_mode(), session.cycle_mode(), session.cycle_mode()] == ["pca", "random", "sae"]


def test_each_mode_keeps_its_own_selection(session):
    session.add_image(1)
    sae_ref = session.select_direction(7)
    session.set_mode("pca")
    assert session.selected is None
    pca_ref = session.select_direction(2)
    session.set_mode("sae")
    assert session.selected == sae_ref
    session.set_mode("pca")
    assert session.selected == pca_ref


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
    unit = session.vector() / np.linalg.norm(session.vector())
    assert second.value == pytest.approx(float(session.directions.random.vector(second.id) @ unit), abs=1e-6)


def test_active_sae_features_equal_topk_of_encoding(session):
    session.add_image(4)
    session.add_image(7, weight=0.5)
    session.select_direction(3)
    session.step(+1)
    q = session.vector()
    sae = session.directions.sae
    x = q / np.linalg.norm(q) * sae.input_norm
    pre = np.maximum(sae.project(x) / sae.scale + sae._offset, 0)  # direct encoder formula
    expected = np.argsort(-pre)[: sae.k]
    active = session.active_directions(sae.k)
    assert [a.id for a in active] == [int(j) for j in expected if pre[j] > 0]
    np.testing.assert_allclose([a.value for a in active], pre[[a.id for a in active]], rtol=1e-4, atol=1e-5)


def test_stepped_codes_from_prefetched_projections_equal_a_full_encode(index_path):
    """A keypress's code (per-term projections, the direction's prefetched on select) lists
    exactly the top-k of a full encode of q, over steps both ways, a rescale and undo."""
    from memetui.index.store import IndexStore

    store = IndexStore.open(index_path)
    session = Session(store, device="cpu", sae=random_sae(store.dim, n=8192, k=64, seed=4))
    sae, codes = session.directions.sae, session.codes
    session.add_image(1)
    session.add_image(9, weight=-0.3)
    for step, (direction, sign) in enumerate([(17, 1), (17, 1), (4000, -1), (17, -1), (8191, 1)] * 3):
        if session.selected != ("sae", direction):
            session.select_direction(direction)
            pending = codes.prefetch(DirectionRef("sae", direction))  # the one select started, or None
            if pending is not None:
                assert pending.result() is not None
            assert codes.prefetch(DirectionRef("sae", direction)) is None  # cached now
        session.step(sign)
        if step == 7:
            session.set_query(session.query.scaled(1 / 3.0))  # a non-step change: recomputed from the terms
        q = session.vector()
        full = sae.encode_query(q)  # one n x d product of the whole query
        code = codes.code(session.query)
        assert code.indices.tolist() == full.indices.tolist()
        np.testing.assert_allclose(code.acts, full.acts, rtol=1e-4, atol=1e-5)
    before = codes.code(session.query)
    session.undo()
    session.redo()
    again = codes.code(session.query)
    assert again.indices.tobytes() == before.indices.tobytes() and again.acts.tobytes() == before.acts.tobytes()


def test_a_newer_prefetch_drops_one_not_started(index_path):
    from memetui.index.store import IndexStore

    store = IndexStore.open(index_path)
    session = Session(store, device="cpu", sae=random_sae(store.dim, n=512, k=8))
    futures = [session.codes.prefetch(DirectionRef("sae", j)) for j in range(20)]
    assert futures[-1].result() is not None
    assert sum(f.cancelled() for f in futures if f is not None) >= 1
    session.add_image(2)
    session.select_direction(3)
    session.step(+1)  # a dropped prefetch is computed on demand
    full = session.directions.sae.encode_query(session.vector())
    assert session.codes.code(session.query).indices.tolist() == full.indices.tolist()


def test_results_for_a_snapshot_are_cached_and_carry_their_own_timing(session):
    session.add_image(6)
    snapshot = session.query
    first = session.results(5, query=snapshot)
    assert not first.cached and first.search_ms > 0
    session.add_image(9)
    again = session.results(5, query=snapshot)
    assert again.cached and again.results == first.results
    assert session.query != snapshot
    assert not session.results(5).cached  # the new query was searched, not served from the snapshot's page
    assert session.cached_results(5, snapshot) == first.results and session.cached_results(6, snapshot) is None


def test_empty_query_gives_no_results(session):
    assert session.results(5).results == []
    assert session.active_directions(5) == []
    with pytest.raises(QueryError):
        session.add_image(10_000)


def test_query_file_round_trip(session, tmp_path):
    session.add_image(0)
    session.select_direction(1)
    session.step(+1)
    path = tmp_path / "q.json"
    library.save_query(path, session.query)
    vector = session.vector().copy()
    session.set_query(Query())
    session.files.load_query(path)
    assert session.query.vector(session.terms).tobytes() == vector.tobytes()
    session.files.save_history(tmp_path / "h.json")
    other = Session.open(session.store.path, sae=session.directions.sae)
    other.files.load_history(tmp_path / "h.json")
    assert other.query == session.query and other.undo_depth == session.undo_depth > 0
    assert library.load_query(tmp_path / "h.json") == session.query  # a history file is a query file too


def test_malformed_query_file_raises_query_error(session, tmp_path):
    bad = tmp_path / "bad.json"
    for text in ["{", "[]", '{"terms": [{"kind": "video"}]}', '{"terms": [{"kind": "text", "weight": "x", "text": "a"}]}',
                 "[" * 100_000]:
        bad.write_text(text)
        with pytest.raises(QueryError):
            session.files.load_query(bad)
    with pytest.raises(QueryError, match="not found"):
        session.files.load_query(tmp_path / "nope.json")


def test_sae_that_does_not_fit_is_refused(index_path):
    from memetui.index.store import IndexStore

    store = IndexStore.open(index_path)
    with pytest.raises(SAEError):
        Session(store, sae=random_sae(store.dim + 1))
    with pytest.raises(SAEError):
        Session(store, sae="nonexistent")


def test_bookmark_and_export(session, tmp_path):
    session.add_image(2)
    name = session.files.bookmark("two", path=tmp_path / "b.json")
    assert library.load_bookmarks(tmp_path / "b.json")[name] == session.query
    out = session.files.export(tmp_path / "e.json", k=3)
    data = json.loads(out.read_text())
    assert len(data["results"]) == 3 and data["query"]["terms"][0]["row"] == 2
    assert data == library.results_document(session.store.path, session.query, session.results(3).results)


def test_labels_are_returned_raw_by_the_engine(index_path):
    from memetui.index.store import IndexStore
    from memetui.text import terminal_safe

    store = IndexStore.open(index_path)
    labels = {j: f"evil\x1b]52;c;aGk=\x07 \x9b2J {j}" for j in range(256)}
    session = Session(store, sae=random_sae(store.dim, labels=labels))
    session.add_image(0)
    for active in session.active_directions(8):
        assert active.label == labels[active.id]  # escaping happens where it is shown
        assert "\x1b" not in terminal_safe(active.label) and "\\x1b" in terminal_safe(active.label)


def test_compare_scores_every_provider_with_intervals(session):
    from memetui.steer.compare import CompareOptions, compare

    directions = session.directions
    report = compare(session.store, {m: directions.provider(m) for m in directions.modes}, session.searcher.ann.search,
                     directions.sae, CompareOptions(directions=8, starts=6, per_start=2, bootstrap=200))
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
    assert session.mode == "sae" and session.directions.sae.n_latents == 64
    assert session.directions.label(("sae", 0)) == "zero\x1b[2J"
    write_sae_files(store.sae_dir, "wide", store.dim + 8)
    with pytest.raises(SAEError, match="has dimension"):
        Session(store, sae="wide")
    write_sae_files(store.sae_dir, "other", store.dim, sha="f" * 64)
    with pytest.raises(SAEError, match="was trained on model"):
        Session(store, sae="other")


def test_pca_cache_goes_to_the_user_cache_not_the_index(session, tmp_path):
    before = sorted(p.name for p in session.store.path.iterdir())
    session.add_image(0)
    session.set_mode("pca")
    assert session.active_directions(3)
    assert sorted(p.name for p in session.store.path.iterdir()) == before
    assert list((tmp_path / "cache").rglob("pca.npz"))


WORDS = ["cat", "red heart", "2:dog -1:text", "blue", "snow -0.5:sky", "nan:cat", "1e999:red", "re:zero", "  "]


def test_5000_random_edits_then_undo_returns_bitwise_to_every_state(tiny_index):
    from memetui.index.store import IndexStore

    index = tiny_index(16)
    store = IndexStore.open(index)
    session = Session(store, device="cpu", sae=random_sae(store.dim, n=128, k=6))
    image_file = sorted((index.parent / "images").glob("*.png"))[0]
    session.add_image(0)
    session.start_here()
    rng = np.random.default_rng(20261201)
    fresh = lambda query: query.vector(session.terms).tobytes() if query.terms else b""  # noqa: E731
    states = [session.query]  # what the history must hold, in order
    recorded = {session.query: fresh(session.query)}
    position = 0
    actions = ["step+", "step-", "select", "mode", "random", "image", "negative", "file", "typed", "size", "undo",
               "redo", "clear"]
    weights = np.array([6, 3, 3, 1, 1, 1, 1, 0.3, 1, 1, 4, 2, 0.3])
    for _ in range(5000):
        action = actions[rng.choice(len(actions), p=weights / weights.sum())]
        try:
            if action in ("step+", "step-"):
                session.step(1 if action == "step+" else -1)
            elif action == "select":
                count = len(session.directions.provider(session.mode))
                session.select_direction(int(rng.integers(count)))
            elif action == "mode":
                session.cycle_mode()
            elif action == "random":
                session.new_random_direction()
            elif action in ("image", "negative"):
                session.add_image(int(rng.integers(store.count)), 1.0 if action == "image" else -0.5)
            elif action == "file":
                session.add_image(str(image_file), 0.5)
            elif action == "typed":
                session.set_query(parse_typed(WORDS[rng.integers(len(WORDS))]))
            elif action == "size":
                session.scale_step(bool(rng.integers(2)))
            elif action == "undo":
                assert session.undo() == (position > 0)
                position = max(position - 1, 0)
            elif action == "redo":
                assert session.redo() == (position < len(states) - 1)
                position = min(position + 1, len(states) - 1)
            elif action == "clear":
                session.set_query(Query())
        except MemetuiError:
            pass  # typed errors only: anything else fails the test
        if session.query != states[position]:  # an edit pushed a new state: the redo branch is gone
            del states[position + 1:]
            states.append(session.query)
            position += 1
            recorded.setdefault(session.query, fresh(session.query))
        assert session.query == states[position] and session.undo_depth == position
    assert len(states) > 500
    while session.undo():
        position -= 1
        assert fresh(session.query) == recorded[states[position]]
    assert position == 0 and session.query == states[0]
    assert fresh(session.query) == recorded[states[0]]


def test_an_index_searched_exactly_needs_no_graph_file(index_path):
    from memetui.index.check import index_problems
    from memetui.index.store import IndexStore

    (index_path / "hnsw.bin").unlink()  # as shipped in sample_index/: below EXACT_MAX_ROWS it is never read
    store = IndexStore.open(index_path)
    assert index_problems(store) == []
    session = Session(store, sae=False)
    session.add_image(3)
    assert session.results(3).results[0].row == 3
