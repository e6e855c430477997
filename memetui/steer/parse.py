"""One parser for queries as people type them, in the query bar and on the command line.

- `cat`, `red heart`: text (a typed line without weights is one phrase);
- `2:cat`, `-1:text`, `-:x`, `0.5:dog`, `1e-1:cat`: a weighted term; a typed line with any weighted
  word is split into one term per word;
- a prefix that reads as a number but is not a finite one (`nan:cat`, `inf:x`, `1e999:red`) is an
  error, not text; other prefixes (`re:zero`, `x:cat`) are part of the text;
- `"one does not simply"`, `2:"brace yourselves"`: text in the image (kind `ocr`), one term per
  quoted phrase, beside whatever else the line says.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

from ..errors import QueryError
from .query import Query, Term

QUOTED = re.compile(r'(?:^|(?<=\s))(?:(\S+?):)?"([^"]*)"(?=\s|$)')
"""`"phrase"` or `W:"phrase"` standing alone among the words of a line."""
WEIGHT_PREFIX = re.compile(
    r"^([+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)|[+-]):(.*)$", re.S | re.I)
"""`W:rest` where W reads as a number (or a bare sign, meaning ±1)."""


def parse_weighted(text: str) -> tuple[float, str]:
    """Split `2:cat`, `-1:text`, `-:x` or `cat` into (weight, text); QueryError for a non-finite weight."""
    match = WEIGHT_PREFIX.match(text)
    if not match:
        return 1.0, text
    weight_text, rest = match.groups()
    weight = float(weight_text + "1") if weight_text in ("+", "-") else float(weight_text)
    if not math.isfinite(weight):
        raise QueryError(f"weight {weight_text!r} in {text!r} is not a finite number")
    return weight, rest


def is_weighted(word: str) -> bool:
    """Whether `word` carries a weight prefix (`2:cat`)."""
    return WEIGHT_PREFIX.match(word) is not None


def parse_terms(texts: Iterable[str] = (), images: Iterable[str] = ()) -> Query:
    """Terms as given on the command line: texts `cat`, `2:cat`, `-1:text`, `"in image"`; images `[W:]PATH`."""
    terms = [_term(text, "text") for text in texts]
    terms += [_term(text, "image") for text in images]
    return Query(tuple(terms))


def parse_typed(text: str) -> Query:
    """A line typed in the query bar: weighted words (`2:cat -1:text`) become separate terms, else one
    phrase; quoted phrases (`"brace yourselves"`, `2:"…"`) become text-in-image terms."""
    quoted: list[Term] = []

    def take(match: re.Match) -> str:
        prefix, phrase = match.groups()
        if prefix is not None and not WEIGHT_PREFIX.match(prefix + ":"):
            return match.group(0)  # `re:"x"`: not a weight, leave it in the text
        weight = parse_weighted(prefix + ":x")[0] if prefix is not None else 1.0
        quoted.append(Term(weight, "ocr", phrase.strip()))
        return " "

    rest = QUOTED.sub(take, text)
    words = rest.split()
    if any(is_weighted(word) for word in words):
        query = parse_terms(words)
    else:
        query = Query().set_text(rest)
    for term in quoted:
        query = query.add(term)
    return query


def _term(text: str, kind: str) -> Term:
    weight, value = parse_weighted(text)
    if kind == "text" and len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return Term(weight, "ocr", value[1:-1].strip())
    return Term(weight, kind, value)
