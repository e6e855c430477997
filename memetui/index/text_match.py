"""Text-in-image ranking: phrase scores over OCR text and their fusion with CLIP scores (pure).

A quoted query term `"one does not simply"` scores each item's OCR text (`phrase_score`):

    2.0   the phrase's words appear in order, adjacent (across line breaks)
    1.9   the same once spaces are ignored (OCR ran words together: "SIMPLYWALK")
    c     otherwise the fraction c ∈ [0, 1) of the phrase's distinct words found as words

Weighted terms add up: text(x) = Σ wᵢ · phrase_score(phraseᵢ, x). Then

- a query of only quoted terms ranks by text score, CLIP score breaking ties (`rank_text_first`);
- a query mixing quoted and other terms fuses both (`fuse`): a calibrated sum `z(clip) + λ·text`
  (CLIP z-normalised over the candidates), or reciprocal rank fusion `1/(k + rank_clip) +
  1/(k + rank_text)`. bench/bench_ocr.py, 40 twin memes (one caption on two pictures; query =
  picture caption + quoted phrase): sum λ=2 hit@1 0.875, λ=1 0.800, RRF k=10 0.675, k=60 0.650,
  CLIP alone 0.075. RRF throws away how far apart the CLIP scores are, which is what tells twins apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .ocr_text import candidates, words

EXACT, JOINED = 2.0, 1.9
FusionMethod = Literal["rrf", "sum"]
FUSION: FusionMethod = "sum"
RRF_K = 10.0
"""RRF constant (k = 60 is the web-search default; 10 measured better here, still below the sum)."""
SUM_LAMBDA = 2.0
"""Weight of the text score in the calibrated sum: one exact phrase (2.0) is worth 4 standard
deviations of CLIP score, so it lifts a meme over pictures without the words; λ = 4 measured the same."""


@dataclass(frozen=True)
class TextMatches:
    """Items whose OCR text matches the quoted terms: rows and text scores, best first."""

    rows: np.ndarray
    """[M] int64 embedding rows."""
    scores: np.ndarray
    """[M] float32 text scores (Σ wᵢ · phrase_score), descending."""


def phrase_score(phrase: str, text: str) -> float:
    """How well OCR `text` contains `phrase`: 2.0 in order, 1.9 run together, else share of words."""
    want, have = words(phrase), words(text)
    if not want or not have:
        return 0.0
    n = len(want)
    for i in range(len(have) - n + 1):
        if have[i:i + n] == want:
            return EXACT
    if "".join(want) in "".join(have):
        return JOINED
    present = set(have)
    joined = "".join(have)
    distinct = list(dict.fromkeys(want))
    found = sum(1 for w in distinct if w in present or (len(w) >= 4 and w in joined))
    return min(found / len(distinct), 0.99)


def match_phrases(db, phrases: list[tuple[float, str]], limit: int = 2000) -> TextMatches:
    """Score items whose OCR text shares a word with any weighted phrase; best first."""
    scores: dict[int, float] = {}
    query_words = [w for _, phrase in phrases for w in words(phrase)]
    texts = dict(candidates(db, query_words, limit))
    for row, text in texts.items():
        total = sum(weight * phrase_score(phrase, text) for weight, phrase in phrases)
        if total > 0:
            scores[row] = total
    order = sorted(scores, key=lambda r: (-scores[r], r))
    return TextMatches(np.asarray(order, dtype=np.int64), np.asarray([scores[r] for r in order], dtype=np.float32))


def text_scores_for(rows: np.ndarray, matches: TextMatches) -> np.ndarray:
    """[len(rows)] text score of each row (0 where it has no match)."""
    lookup = dict(zip(matches.rows.tolist(), matches.scores.tolist()))
    return np.asarray([lookup.get(int(r), 0.0) for r in rows], dtype=np.float32)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score (highest first; ties by position)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def fuse(clip: np.ndarray, text: np.ndarray, method: FusionMethod = FUSION,
         k: float = RRF_K, lam: float = SUM_LAMBDA) -> np.ndarray:
    """Fused [M] scores of candidates from their CLIP scores and text scores (0 = no match).

    rrf: 1/(k + rank_clip) + 1/(k + rank_text), the text term only where text > 0.
    sum: (clip − mean) / std + λ · text, moments over the candidates.
    """
    clip = np.asarray(clip, dtype=np.float64)
    text = np.asarray(text, dtype=np.float64)
    if clip.shape != text.shape:
        raise ValueError(f"clip {clip.shape} and text {text.shape} scores differ in shape")
    if method == "rrf":
        fused = 1.0 / (k + _ranks(clip))
        matched = text > 0
        fused[matched] += 1.0 / (k + _ranks(np.where(matched, text, -np.inf))[matched])
        return fused
    if method == "sum":
        spread = clip.std() or 1.0
        return (clip - clip.mean()) / spread + lam * text
    raise ValueError(f"unknown fusion method {method!r} (rrf, sum)")


def rank_text_first(clip: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Candidate order (indices) by text score, then CLIP score: for queries of only quoted terms."""
    return np.lexsort((-np.asarray(clip, dtype=np.float64), -np.asarray(text, dtype=np.float64)))


def hybrid_order(clip: np.ndarray, text: np.ndarray, text_only: bool,
                 method: FusionMethod = FUSION) -> np.ndarray:
    """Candidate indices, best first: text-first for quoted-only queries, else fused."""
    if text_only:
        return rank_text_first(clip, text)
    return np.argsort(-fuse(clip, text, method), kind="stable")
