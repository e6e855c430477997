"""Query: vectors, merging steps, undo/redo states, JSON round trip, malformed files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memetui.errors import QueryError
from memetui.session.library import load_bookmarks, load_query, save_bookmark, save_query
from memetui.steer.history import QueryHistory
from memetui.steer.parse import parse_terms, parse_typed, parse_weighted
from memetui.steer.query import DirectionRef, Query, Term


class TableResolver:
    """Resolves terms from a fixed table of random unit vectors (no model needed)."""

    def __init__(self, dim: int = 16, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.dim = dim
        self.table: dict = {}

    def term_vector(self, term: Term) -> np.ndarray:
        if term.key not in self.table:
            v = self.rng.standard_normal(self.dim).astype(np.float32)
            self.table[term.key] = v / np.linalg.norm(v)
        return self.table[term.key]


def test_vector_is_weighted_sum_not_renormalised():
    r = TableResolver()
    q = Query((Term(2.0, "text", "cat"), Term(-0.5, "image", 3)))
    expected = 2.0 * r.term_vector(q.terms[0]) - 0.5 * r.term_vector(q.terms[1])
    np.testing.assert_allclose(q.vector(r), expected, rtol=1e-6)
    assert q.vector(r).dtype == np.float32


def test_step_adds_alpha_times_norm_and_merges():
    r = TableResolver()
    q = Query((Term(1.0, "text", "cat"),))
    d = DirectionRef("sae", 7)
    n0 = float(np.linalg.norm(q.vector(r)))
    q1 = q.step(d, +1, n0, 0.25)
    assert q1.terms[-1] == Term(0.25 * n0, "direction", d, 1)
    n1 = float(np.linalg.norm(q1.vector(r)))
    q2 = q1.step(d, +1, n1, 0.25).step(d, -1, 1.0, 0.5)
    dirs = [t for t in q2.terms if t.kind == "direction"]
    assert len(dirs) == 1 and dirs[0].steps == 1
    assert dirs[0].weight == pytest.approx(0.25 * n0 + 0.25 * n1 - 0.5)
    other = q2.step(DirectionRef("pca", 7), +1, 1.0)
    assert len(other.direction_terms()) == 2


def test_history_undo_restores_bitwise_equal_vectors_after_any_steps():
    r = TableResolver()
    rng = np.random.default_rng(1)
    history = QueryHistory()
    history.push(Query((Term(1.0, "text", "dog"), Term(-1.0, "image", "/x/y.png"))))
    vectors = [history.current.vector(r).copy()]
    for _ in range(40):
        q = history.current
        d = DirectionRef(("sae", "pca", "random")[rng.integers(3)], int(rng.integers(4)))
        history.push(q.step(d, int(rng.choice([-1, 1])), float(np.linalg.norm(q.vector(r))), float(rng.uniform(0.05, 1))))
        vectors.append(history.current.vector(r).copy())
    for expected in reversed(vectors[:-1]):
        assert history.undo()
        assert history.current.vector(r).tobytes() == expected.tobytes()
    for expected in vectors[1:]:
        assert history.redo()
        assert history.current.vector(r).tobytes() == expected.tobytes()
    assert not history.redo()


def test_push_after_undo_drops_the_redo_branch():
    history = QueryHistory()
    a = history.push(Query((Term(1, "text", "a"),)))
    history.push(Query((Term(1, "text", "b"),)))
    history.undo()
    history.push(Query((Term(1, "text", "c"),)))
    assert not history.can_redo
    history.undo()
    assert history.current == a


def test_json_round_trip_of_query_and_history(tmp_path):
    q = Query((Term(2.0, "text", "cat ü"), Term(-1.0, "image", 4), Term(0.5, "image", "/a b.png"),
               Term(0.3125, "direction", DirectionRef("random", 11), 2)))
    assert Query.from_json(q.to_json()) == q
    path = tmp_path / "q.json"
    save_query(path, q)
    assert load_query(path) == q
    history = QueryHistory([Query(), q], 1)
    again = QueryHistory.from_dict(json.loads(json.dumps(history.to_dict())))
    assert again.states == history.states and again.position == 1
    (tmp_path / "h.json").write_text(json.dumps(history.to_dict()))
    assert load_query(tmp_path / "h.json") == q
    save_bookmark("mine", q, tmp_path / "b.json")
    assert load_bookmarks(tmp_path / "b.json") == {"mine": q}
    r = TableResolver()
    assert Query.from_json(q.to_json()).vector(r).tobytes() == q.vector(r).tobytes()


@pytest.mark.parametrize("text", [
    "", "{", "null", "[]", '{"terms": 3}', '{"format": 9, "terms": []}',
    '{"terms": [1]}', '{"terms": [{"kind": "sound", "text": "x"}]}',
    '{"terms": [{"kind": "text"}]}', '{"terms": [{"kind": "text", "text": "  "}]}',
    '{"terms": [{"kind": "text", "text": "a", "weight": "heavy"}]}',
    '{"terms": [{"kind": "text", "text": "a", "weight": NaN}]}',
    '{"terms": [{"kind": "image", "row": -1}]}', '{"terms": [{"kind": "image", "row": true}]}',
    '{"terms": [{"kind": "direction", "provider": "ica", "id": 1}]}',
    '{"terms": [{"kind": "direction", "provider": "sae", "id": "1"}]}',
    '{"history": []}', '{"history": [{"terms": []}], "position": 5}',
    "[" * 100_000,
])
def test_malformed_query_file_raises_query_error(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(QueryError):
        load_query(path)


def test_missing_query_file_raises_query_error(tmp_path):
    with pytest.raises(QueryError):
        load_query(tmp_path / "nope.json")


def test_cli_terms_parse_weights():
    assert parse_weighted("2:cat") == (2.0, "cat")
    assert parse_weighted("-1:text") == (-1.0, "text")
    assert parse_weighted("-:x") == (-1.0, "x")
    assert parse_weighted("a:b") == (1.0, "a:b")
    assert parse_weighted("1e-1:cat") == (0.1, "cat")
    q = parse_terms(["cat", "-0.5:dog"], ["2:/tmp/a.png"])
    assert [(t.weight, t.kind, t.value) for t in q.terms] == [(1.0, "text", "cat"), (-0.5, "text", "dog"),
                                                             (2.0, "image", "/tmp/a.png")]


def test_set_text_replaces_text_terms_in_place():
    q = Query((Term(1, "image", 1), Term(1, "text", "a"), Term(1, "text", "b")))
    assert [t.value for t in q.set_text("c").terms] == [1, "c"]
    assert [t.value for t in q.set_text(" ").terms] == [1]


def test_empty_query_has_no_vector():
    with pytest.raises(QueryError):
        Query().vector(TableResolver())


@pytest.mark.parametrize("text", ["nan:cat", "NaN:cat", "inf:x", "-inf:x", "1e999:red"])
def test_non_finite_weights_are_errors_not_text(text):
    with pytest.raises(QueryError, match="not a finite number"):
        parse_weighted(text)
    with pytest.raises(QueryError):
        parse_typed(f"cat {text}")


def test_typed_query_parses_weights_and_keeps_phrases():
    weighted = parse_typed("2:cat -1:text")
    assert [(t.weight, t.value) for t in weighted.terms] == [(2.0, "cat"), (-1.0, "text")]
    assert [(t.weight, t.value) for t in parse_typed("red heart").terms] == [(1.0, "red heart")]
    assert [t.value for t in parse_typed("re:zero").terms] == ["re:zero"]


def test_scaled_query_keeps_direction_and_rejects_bad_factors():
    r = TableResolver()
    q = Query((Term(2.0, "text", "a"), Term(-1.0, "image", 3)))
    v, w = q.vector(r), q.scaled(0.25).vector(r)
    np.testing.assert_allclose(w, 0.25 * v, rtol=1e-6)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(QueryError):
            q.scaled(bad)
