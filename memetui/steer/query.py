"""Query: weighted terms (text, image, direction), their vector, and their JSON form.

A query is an immutable tuple of terms ``(weight, kind, value)``. Its vector is

    q = Σᵢ wᵢ eᵢ            eᵢ ∈ R^d: unit text/image embedding or unit direction

not re-normalised (as in the seed's Meme Search Engine); ranking is by ``q·x``. Stepping along a
direction d by ``±1`` adds ``±α·‖q‖`` to the weight of d's term (α = step size), creating the term
on the first step, so repeated steps on one direction merge into one term. Every edit returns a
new Query; `steer.history.QueryHistory` keeps the states, so undo restores a previous state object exactly and
its vector is bitwise equal to the one computed before.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Literal, Protocol

import numpy as np

from ..errors import QueryError
from .provider import PROVIDERS

FORMAT_VERSION = 1
DEFAULT_STEP = 0.25
"""α, the default step size: a step along d adds ±α·‖q‖ to d's weight."""
STEP_FACTOR = 1.5
"""`]` multiplies the step size by this, `[` divides by it."""
STEP_RANGE = (1 / 64, 4.0)
"""Smallest and largest step size."""
NORM_LIMIT = 1e3
"""A step from a query with ‖q‖ above this first rescales it to ‖q‖ = 1 (ranking and SAE reading
are scale-invariant), so hundreds of steps never overflow float32."""
Kind = Literal["text", "image", "direction", "ocr"]
KINDS: tuple[str, ...] = ("text", "image", "direction", "ocr")
"""`ocr`: text in the image (typed in quotes, `"brace yourselves"`): ranked by the items' OCR text
fused with CLIP (memetui.index.text_match); its vector part is the CLIP embedding of the text."""


class DirectionRef(tuple):
    """(provider, id): a direction of one provider ('sae', 'pca' or 'random')."""

    __slots__ = ()

    def __new__(cls, provider: str, id: int):  # noqa: A002 - the protocol's name
        if provider not in PROVIDERS:
            raise QueryError(f"unknown direction provider {provider!r} (expected one of {', '.join(PROVIDERS)})")
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)) or id < 0:
            raise QueryError(f"direction id must be an integer >= 0, not {id!r}")
        return super().__new__(cls, (provider, int(id)))

    @property
    def provider(self) -> str:
        return self[0]

    @property
    def id(self) -> int:  # noqa: A003
        return self[1]

    def __repr__(self) -> str:
        return f"{self[0]}:{self[1]}"


@dataclass(frozen=True)
class Term:
    """One weighted query term.

    `value` is a str (text), an int row or str path (image), or a DirectionRef (direction).
    """

    weight: float
    kind: Kind
    value: str | int | DirectionRef
    steps: int = 0
    """Net number of steps taken along a direction term (display only; 0 for other kinds)."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise QueryError(f"unknown term kind {self.kind!r} (expected text, image, direction or ocr)")
        if not isinstance(self.weight, (int, float, np.floating)) or isinstance(self.weight, bool) \
                or not math.isfinite(self.weight):
            raise QueryError(f"term weight must be a finite number, not {self.weight!r}")
        object.__setattr__(self, "weight", float(self.weight))
        value = self.value
        if self.kind in ("text", "ocr") and not (isinstance(value, str) and value.strip()):
            raise QueryError(f"{'an' if self.kind == 'ocr' else 'a'} {self.kind} term needs non-empty text, not {value!r}")
        if self.kind == "image":
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
                object.__setattr__(self, "value", int(value))
            elif isinstance(value, Path) or (isinstance(value, str) and value):
                object.__setattr__(self, "value", str(value))
            else:
                raise QueryError(f"an image term needs a row number or a path, not {value!r}")
        if self.kind == "direction":
            if not isinstance(value, DirectionRef):
                if not isinstance(value, (tuple, list)) or len(value) != 2:
                    raise QueryError(f"a direction term needs (provider, id), not {value!r}")
                object.__setattr__(self, "value", DirectionRef(*value))

    @property
    def key(self) -> tuple:
        """What identifies the term's unit vector (terms with one key share one embedding)."""
        return (self.kind, self.value)

    def describe(self) -> str:
        """Short human form, e.g. `+1.00 text 'cat'`, `-0.42 sae:123 (3 steps)`."""
        if self.kind == "direction":
            extra = f" ({self.steps:+d} steps)" if self.steps else ""
            return f"{self.weight:+.2f} {self.value!r}{extra}"
        if self.kind == "ocr":
            return f'{self.weight:+.2f} in image "{self.value}"'
        shown = f"#{self.value}" if isinstance(self.value, int) else repr(self.value)
        return f"{self.weight:+.2f} {self.kind} {shown}"

    def to_dict(self) -> dict:
        """JSON form: {"weight", "kind", "text"|"row"|"path"|("provider","id","steps")}."""
        data: dict = {"weight": self.weight, "kind": self.kind}
        if self.kind in ("text", "ocr"):
            data["text"] = self.value
        elif self.kind == "image":
            data["row" if isinstance(self.value, int) else "path"] = self.value
        else:
            data.update(provider=self.value.provider, id=self.value.id, steps=self.steps)
        return data

    @classmethod
    def from_dict(cls, data: object) -> "Term":
        """Parse the JSON form (raises QueryError)."""
        if not isinstance(data, dict):
            raise QueryError(f"a query term must be a JSON object, not {type(data).__name__}")
        kind = data.get("kind")
        weight = data.get("weight", 1.0)
        try:
            if kind in ("text", "ocr"):
                return cls(weight, kind, data["text"])
            if kind == "image":
                if "row" in data:
                    return cls(weight, "image", data["row"])
                return cls(weight, "image", data["path"])
            if kind == "direction":
                steps = data.get("steps", 0)
                if isinstance(steps, bool) or not isinstance(steps, int):
                    raise QueryError(f"direction steps must be an integer, not {steps!r}")
                return cls(weight, "direction", DirectionRef(data["provider"], data["id"]), steps)
        except KeyError as exc:
            raise QueryError(f"{kind} term lacks {exc.args[0]!r}") from None
        raise QueryError(f"unknown term kind {kind!r} (expected text, image, direction or ocr)")


class TermResolver(Protocol):
    """Maps a term to its unit vector ([d] float32)."""

    def term_vector(self, term: Term) -> np.ndarray: ...


@dataclass(frozen=True)
class Query:
    """An immutable weighted sum of terms; edits return new Queries."""

    terms: tuple[Term, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "terms", tuple(self.terms))
        if not all(isinstance(t, Term) for t in self.terms):
            raise QueryError("query terms must be Term objects")

    def __bool__(self) -> bool:
        return bool(self.terms)

    # -- vector --------------------------------------------------------------------------------
    def vector(self, resolver: TermResolver) -> np.ndarray:
        """q = Σ wᵢ eᵢ as float32 [d], summed in term order (deterministic, not re-normalised)."""
        if not self.terms:
            raise QueryError("the query is empty: add a text or image term")
        total = None
        for term in self.terms:
            part = np.float32(term.weight) * np.asarray(resolver.term_vector(term), dtype=np.float32)
            total = part if total is None else total + part
        return total

    # -- edits ---------------------------------------------------------------------------------
    def with_terms(self, terms: Iterable[Term]) -> "Query":
        """This query with `terms` instead of its own."""
        return replace(self, terms=tuple(terms))

    def add(self, term: Term) -> "Query":
        """Append a term (a term with the same key merges: weights add)."""
        for i, old in enumerate(self.terms):
            if old.key == term.key:
                merged = replace(old, weight=old.weight + term.weight, steps=old.steps + term.steps)
                return self.with_terms(self.terms[:i] + (merged,) + self.terms[i + 1:])
        return self.with_terms(self.terms + (term,))

    def set_text(self, text: str, weight: float = 1.0) -> "Query":
        """Replace every text term by one term `text` (empty text removes them); stays in place."""
        terms = list(self.terms)
        first = next((i for i, t in enumerate(terms) if t.kind == "text"), len(terms))
        terms = [t for t in terms if t.kind != "text"]
        if text.strip():
            terms.insert(min(first, len(terms)), Term(weight, "text", text.strip()))
        return self.with_terms(terms)

    def step(self, direction: DirectionRef, sign: int, norm: float, step_size: float = DEFAULT_STEP) -> "Query":
        """Step by `sign` (±1) along `direction`: its term weight changes by sign·α·‖q‖.

        `norm` is ‖q‖ of this query's vector (1 for an empty query, so a direction alone steps);
        α = `step_size`. Steps on a direction that already has a term merge into it.
        """
        if sign not in (1, -1):
            raise QueryError(f"step sign must be +1 or -1, not {sign!r}")
        check_step_size(step_size)
        norm = float(norm) if norm > 0 and math.isfinite(norm) else 1.0
        return self.add(Term(sign * step_size * norm, "direction", DirectionRef(*direction), sign))

    def scaled(self, factor: float) -> "Query":
        """Every weight times `factor` (> 0): the same ranking and SAE reading, another ‖q‖."""
        if not (math.isfinite(factor) and factor > 0):
            raise QueryError(f"scale factor must be a positive number, not {factor!r}")
        return self.with_terms(replace(t, weight=t.weight * factor) for t in self.terms)

    def direction_terms(self) -> dict[DirectionRef, Term]:
        """Direction terms by direction."""
        return {t.value: t for t in self.terms if t.kind == "direction"}

    def describe(self) -> str:
        """One line listing the terms."""
        return ", ".join(t.describe() for t in self.terms) or "(empty query)"

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON form: {"format": 1, "terms": [...]}."""
        return {"format": FORMAT_VERSION, "terms": [t.to_dict() for t in self.terms]}

    @classmethod
    def from_dict(cls, data: object) -> "Query":
        """Parse the JSON form (raises QueryError)."""
        if not isinstance(data, dict):
            raise QueryError("a query must be a JSON object with a 'terms' list")
        if data.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise QueryError(f"unsupported query format {data.get('format')!r} (expected {FORMAT_VERSION})")
        terms = data.get("terms")
        if not isinstance(terms, list):
            raise QueryError("a query must have a 'terms' list")
        return cls(tuple(Term.from_dict(t) for t in terms))

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Query":
        """Parse JSON text (raises QueryError)."""
        return cls.from_dict(parse_json(text))


def check_step_size(step_size: float) -> float:
    """Return `step_size` as a float, or raise QueryError unless it is finite and > 0."""
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.floating)) \
            or not (math.isfinite(step_size) and step_size > 0):
        raise QueryError(f"step size must be a positive number, not {step_size!r}")
    return float(step_size)


def parse_json(text: str) -> object:
    """json.loads, raising QueryError on malformed or too deeply nested text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise QueryError(f"not valid JSON: {exc}") from None
