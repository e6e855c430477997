"""Words of captions, file names and text in images: tokens, exemplar words (tf-idf) and label hits.

- exemplar words of a feature: the words w of its top exemplars' documents with the largest
  (share of exemplars containing w) · log(N / df(w)), df over all N documents of the index,
  kept when at least two exemplars contain w;
- a label occurs in a caption when its words appear there consecutively (a trailing plural 's'
  ignored on both sides): "red dragon" occurs in "Mahjong red dragons".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Mapping, Sequence

import numpy as np

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
STOPWORDS = frozenset("""
a an the and or of in on at to for with without by from as is are be was were it its this that these those
not no but if then than so very too over under into onto off out up down about after before all any some
each other more most such only own same can will just one two three when what who whom how why where which
you your yours me my mine we our they them their he him his she her hers have has had do does did get got
png jpg jpeg webp gif svg img image
images picture file copy new old fe de la le el les des del di da und der die das http https www com
""".split())
"""Function words and file-name noise: never exemplar words."""
MIN_EXEMPLARS = 2
"""An exemplar word is in at least this many of the feature's exemplars."""


def words(text: str) -> list[str]:
    """Lower-case alphabetic words of `text` (digits and punctuation split words)."""
    return _WORD.findall(str(text).lower())


def _fold(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_words(text: str) -> set[str]:
    """Distinct words of `text` worth labelling with: ≥ 3 letters, not stop words."""
    return {w for w in words(text) if len(w) >= 3 and w not in STOPWORDS}


def document_frequencies(documents: Sequence[str]) -> tuple[list[set[str]], Counter]:
    """Content words of each document and in how many documents each word occurs."""
    sets = [content_words(doc) for doc in documents]
    df: Counter = Counter()
    for found in sets:
        df.update(found)
    return sets, df


def exemplar_words(exemplars: np.ndarray, doc_words: Sequence[set[str]], df: Mapping[str, int], top: int = 3,
                   min_exemplars: int = MIN_EXEMPLARS) -> list[list[str]]:
    """Per feature (row of `exemplars` [n, m], -1 = none) its `top` most distinctive exemplar words."""
    n_docs = max(len(doc_words), 1)
    out: list[list[str]] = []
    for row in np.asarray(exemplars):
        rows = [int(r) for r in row if 0 <= r < len(doc_words)]
        counts: Counter = Counter()
        for r in rows:
            counts.update(doc_words[r])
        scored = [(c / len(rows) * math.log(n_docs / df.get(w, 1)), w) for w, c in counts.items() if c >= min_exemplars]
        scored.sort(key=lambda item: (-item[0], item[1]))
        picked: list[str] = []
        for _, word in scored:  # one form per word: "flag" and "flags" are one label
            if all(_fold(word) != _fold(p) for p in picked):
                picked.append(word)
            if len(picked) == top:
                break
        out.append(picked)
    return out


def occurs(label: str, text: str) -> bool:
    """Whether the words of `label` appear consecutively in `text` (case and a plural 's' ignored)."""
    needle = [_fold(w) for w in words(label)]
    hay = [_fold(w) for w in words(text)]
    if not needle:
        return False
    n = len(needle)
    return any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))


def label_hits(label: str, rows: Sequence[int], captions: Mapping[int, str]) -> int:
    """How many of `rows` have a caption in which `label` occurs."""
    return sum(1 for r in rows if occurs(label, captions.get(int(r), "")))
