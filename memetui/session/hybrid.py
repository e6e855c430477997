"""Hybrid search for queries with text-in-image terms (`"brace yourselves"`): CLIP + OCR text.

Candidates are the CLIP top hits (ANN, `CLIP_POOL` × k) plus every live item whose OCR text
matches a quoted phrase; each gets its exact CLIP score q·x (q includes steps along directions,
so steering moves the CLIP part) and its text score (memetui.index.text_match). A query whose
only content terms are quoted ranks text first with CLIP breaking ties; a query that also has
text or image terms ranks by the fusion measured in bench/bench_ocr.py.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..index.text_match import hybrid_order, match_phrases, text_scores_for
from ..steer.query import Query

CLIP_POOL = 8
"""CLIP candidates per requested result (at least 200)."""


class HybridHits(NamedTuple):
    """Ranked rows of a hybrid search."""

    rows: np.ndarray
    """[k] int64 rows, best first."""
    clip: np.ndarray
    """[k] float32 CLIP scores q·x."""
    text: np.ndarray
    """[k] float32 text scores (0 = the item's text does not match)."""


def quoted_phrases(query: Query) -> list[tuple[float, str]]:
    """(weight, phrase) of the query's text-in-image terms with positive weight."""
    return [(t.weight, t.value) for t in query.terms if t.kind == "ocr" and t.weight > 0]


def has_quoted(query: Query) -> bool:
    """Whether the query has a text-in-image term."""
    return any(t.kind == "ocr" for t in query.terms)


def hybrid_search(store, ann, query: Query, vector: np.ndarray, k: int) -> HybridHits:
    """Top-k live rows for `query` by CLIP score `vector`·x fused with OCR phrase matches."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    pool = ann.search(vector, max(CLIP_POOL * k, 200))
    matches = match_phrases(store.db, quoted_phrases(query))
    live = store.live_mask()
    matched = matches.rows[(matches.rows < len(live))]
    matched = matched[live[matched]] if len(matched) else matched
    rows = np.unique(np.concatenate([pool.rows.astype(np.int64), matched.astype(np.int64)]))
    if not len(rows):
        empty = np.zeros(0, np.float32)
        return HybridHits(np.zeros(0, np.int64), empty, empty)
    clip = (np.asarray(store.embeddings[rows], dtype=np.float32) @ vector).astype(np.float32)
    text = text_scores_for(rows, matches)
    text_only = not any(t.kind in ("text", "image") for t in query.terms)
    order = hybrid_order(clip, text, text_only)[:k]
    return HybridHits(rows[order], clip[order], text[order])
