"""Session: one index + embedder + directions + query history behind one facade (CLI and TUI).

The Session owns the mutable state of a search — the current Query (with undo/redo), the
steering mode ('sae' | 'pca' | 'random'), the selected direction and the step size — and answers
`results(k)` and `active_directions(n)` in milliseconds:

- term vectors are cached per term; the query vector per Query state (undo is a cache hit);
- SAE codes come from cached per-term projections W_enc·eᵢ (see steer/directions.py), so a step
  costs O(n_latents), not a 16384×512 matvec;
- the CLIP model is loaded only when a text or image-path term needs it.

Threading: mutate from one thread (the UI); `results(k, query=q)` and
`active_directions(n, query=q)` on a snapshot `q = session.query` may run in a worker.
The engine never prints; it raises MemetuiError subclasses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import QueryError, SAEError
from .index.ann import AnnSearcher
from .index.store import IndexStore
from .paths import resolve_index, user_data_dir
from .steer.directions import (ActiveDirection, DirectionProvider, PCADirections, RandomDirections,
                               SAEDirections, load_sae_directions, safe_label)
from .steer.query import DEFAULT_STEP, DirectionRef, Query, QueryHistory, Term, check_step_size

MODES: tuple[str, ...] = ("sae", "pca", "random")
STEP_FACTOR = 1.5
"""`]` multiplies the step size by this, `[` divides by it."""
STEP_RANGE = (1 / 64, 4.0)
"""Smallest and largest step size."""


@dataclass(frozen=True)
class SearchResult:
    """One ranked image."""

    rank: int
    row: int
    path: Path
    score: float


@dataclass
class Timings:
    """Milliseconds spent by the latest call of each kind (shown in the status bar)."""

    search_ms: float = 0.0
    """results(): query vector + ANN top-k + paths."""
    active_ms: float = 0.0
    """active_directions(): SAE encode / projections."""
    embed_ms: float = 0.0
    """Embedding the latest new text/image-path term with CLIP (0 when cached)."""


class SessionState(NamedTuple):
    """A snapshot for a status bar."""

    mode: str
    modes: tuple[str, ...]
    step_size: float
    selected: DirectionRef | None
    selected_label: str | None
    terms: int
    can_undo: bool
    can_redo: bool
    last_search_ms: float


class Session:
    """Searches one index and steers a query along SAE / PCA / random directions."""

    def __init__(self, store: IndexStore, device: str | None = None, model: str | None = None,
                 pretrained: str | None = None, sae: str | Path | bool | SAEDirections | None = None, seed: int = 0,
                 ann: AnnSearcher | None = None):
        """`sae`: None = the index's first SAE if any, False = none, or a name/path (SAEError if
        it does not fit the index), or SAEDirections. `seed`: seed of the random directions."""
        self.store = store
        self.device = device
        self._model_override = (model, pretrained) if model else None
        self._embedder = None
        self.ann = ann or AnnSearcher(store)
        self.timings = Timings()
        self._text_vector = lru_cache(maxsize=512)(self._embed_text_uncached)
        self._path_vectors: dict[str, np.ndarray] = {}
        if isinstance(sae, SAEDirections):
            if sae.dim != store.dim:
                raise SAEError(f"SAE has dimension {sae.dim}, the index {store.dim}")
            self.sae: SAEDirections | None = sae
        else:
            self.sae = None if sae is False else load_sae_directions(store, sae)
        self._pca: PCADirections | None = None
        self.random = RandomDirections(store.dim, seed=seed)
        self.history = QueryHistory()
        self._mode = "sae" if self.sae is not None else "pca"
        self._selected: DirectionRef | None = None
        self._step_size = DEFAULT_STEP
        self._vectors: OrderedDict[Query, np.ndarray] = OrderedDict()
        self._projections: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._results: OrderedDict[tuple, list[SearchResult]] = OrderedDict()

    @classmethod
    def open(cls, index: str | Path | None = None, **kwargs) -> "Session":
        """Open the index named by `index` (or the default index); kwargs as for __init__."""
        return cls(IndexStore.open(resolve_index(index)), **kwargs)

    # -- state ---------------------------------------------------------------------------------
    @property
    def query(self) -> Query:
        """The current (immutable) query."""
        return self.history.current

    @property
    def mode(self) -> str:
        """The steering mode: 'sae', 'pca' or 'random'."""
        return self._mode

    @property
    def modes(self) -> tuple[str, ...]:
        """Modes available (no 'sae' when the index has no SAE)."""
        return MODES if self.sae is not None else MODES[1:]

    @property
    def step_size(self) -> float:
        """α: a step along d adds ±α·‖q‖·d."""
        return self._step_size

    @property
    def selected(self) -> DirectionRef | None:
        """The direction that `step` moves along (None: the top active one of the mode)."""
        return self._selected

    @property
    def can_undo(self) -> bool:
        return self.history.can_undo

    @property
    def can_redo(self) -> bool:
        return self.history.can_redo

    @property
    def last_search_ms(self) -> float:
        """Milliseconds of the latest results() call."""
        return self.timings.search_ms

    def state(self) -> SessionState:
        """Snapshot for a status bar."""
        sel = self._selected
        return SessionState(self._mode, self.modes, self._step_size, sel,
                            self.direction_label(sel) if sel is not None else None, len(self.query.terms),
                            self.can_undo, self.can_redo, self.timings.search_ms)

    def provider(self, name: str | None = None) -> DirectionProvider:
        """The direction provider `name` (default: the current mode's); PCA is computed lazily."""
        name = name or self._mode
        if name == "sae":
            if self.sae is None:
                raise SAEError("this index has no SAE (train one with: memetui train-sae)")
            return self.sae
        if name == "pca":
            if self._pca is None:
                self._pca = PCADirections.for_store(self.store)
            return self._pca
        if name == "random":
            return self.random
        raise QueryError(f"unknown mode {name!r} (expected one of {', '.join(MODES)})")

    def direction_label(self, direction: DirectionRef | tuple[str, int]) -> str:
        """Terminal-safe label of a direction."""
        provider, id_ = direction
        return self.provider(provider).label(id_)

    # -- query edits (each pushes an undoable state and returns the new query) -----------------
    def set_query(self, query: Query) -> Query:
        """Make `query` current (validates that its terms resolve)."""
        if not isinstance(query, Query):
            raise QueryError("set_query needs a Query")
        if query.terms:
            self.vector(query)
        return self.history.push(query)

    def set_text(self, text: str, weight: float = 1.0) -> Query:
        """Replace the query's text terms by `text` (empty: remove them); embeds with CLIP."""
        return self.set_query(self.query.set_text(text, weight))

    def add_text(self, text: str, weight: float = 1.0) -> Query:
        """Add a text term (weights of equal texts add)."""
        return self.set_query(self.query.add(Term(weight, "text", text)))

    def add_image(self, image: int | str | Path, weight: float = 1.0) -> Query:
        """Add an image term: an index row (int) or an image file path; weight < 0 is negative."""
        return self.set_query(self.query.add(Term(weight, "image", image)))

    def clear(self) -> Query:
        """Empty the query (undoable)."""
        return self.history.push(Query())

    def select_direction(self, id: int, provider: str | None = None) -> DirectionRef:  # noqa: A002
        """Select direction `id` of `provider` (default: the current mode) for stepping."""
        ref = DirectionRef(provider or self._mode, id)
        self.provider(ref.provider).vector(ref.id)  # validates the id
        self._selected = ref
        if self.sae is not None:  # prefetch W_enc·d so the next step costs O(n_latents)
            self._projection(Term(1.0, "direction", ref))
        return ref

    def step(self, sign: int = 1) -> Query:
        """Step ±1 along the selected direction (or the mode's top active one): w_d += ±α·‖q‖."""
        direction = self._selected
        if direction is None:
            top = self.active_directions(1)
            if not top:
                raise QueryError("no direction to step along: select one or add a query term")
            direction = self.select_direction(top[0].id)
        return self.set_query(self._stepped(self.query, direction, sign))

    def stepped_query(self, sign: int = 1) -> Query | None:
        """The query `step(sign)` would set, without setting it; None when no direction is selected."""
        direction = self._selected
        return None if direction is None else self._stepped(self.query, direction, sign)

    def _stepped(self, current: Query, direction: DirectionRef, sign: int) -> Query:
        norm = float(np.linalg.norm(self.vector(current))) if current.terms else 1.0
        return current.step(direction, sign, norm, self._step_size)

    def set_step_size(self, step_size: float) -> float:
        """Set α (clamped to STEP_RANGE)."""
        lo, hi = STEP_RANGE
        self._step_size = float(min(max(check_step_size(step_size), lo), hi))
        return self._step_size

    def grow_step(self) -> float:
        """`]`: α ×= STEP_FACTOR."""
        return self.set_step_size(self._step_size * STEP_FACTOR)

    def shrink_step(self) -> float:
        """`[`: α ÷= STEP_FACTOR."""
        return self.set_step_size(self._step_size / STEP_FACTOR)

    def set_mode(self, mode: str) -> str:
        """Switch to `mode`; the selection is cleared unless it belongs to that mode."""
        if mode not in self.modes:
            raise QueryError(f"mode {mode!r} is not available (available: {', '.join(self.modes)})")
        self._mode = mode
        if self._selected is not None and self._selected.provider != mode:
            self._selected = None
        return mode

    def cycle_mode(self) -> str:
        """`m`: sae → pca → random → sae (skipping sae without an SAE)."""
        modes = self.modes
        nxt = modes[(modes.index(self._mode) + 1) % len(modes)] if self._mode in modes else modes[0]
        return self.set_mode(nxt)

    def new_random_direction(self) -> ActiveDirection:
        """`n`: a new random direction, selected (switches to random mode)."""
        self.set_mode("random")
        new_id = self.random.new()
        self.select_direction(new_id, "random")
        value = 0.0
        if self.query.terms:
            q = self.vector(self.query)
            value = float(self.random.vector(new_id) @ (q / max(float(np.linalg.norm(q)), 1e-12)))
        return ActiveDirection(new_id, self.random.label(new_id), value)

    def undo(self) -> bool:
        """`u`: restore the previous query state exactly; False if there is none."""
        return self.history.undo()

    def redo(self) -> bool:
        """`ctrl+r`: re-apply the undone state; False if there is none."""
        return self.history.redo()

    # -- answers -------------------------------------------------------------------------------
    def vector(self, query: Query | None = None) -> np.ndarray:
        """q = Σ wᵢ eᵢ of `query` (default: current), float32 [d], read-only, cached per state."""
        query = self.query if query is None else query
        cached = self._vectors.get(query)
        if cached is None:
            cached = query.vector(self)
            cached.setflags(write=False)
            _put(self._vectors, query, cached, 256)
        return cached

    def results(self, k: int = 20, query: Query | None = None, record: bool = True) -> list[SearchResult]:
        """Top-k images for `query` (default: the current one); [] for an empty query.

        Results are cached per (query, k); `record=False` (prefetching) leaves `last_search_ms` alone.
        """
        started = time.perf_counter()
        query = self.query if query is None else query
        if not query.terms:
            found = []
        else:
            key = (query, int(k))
            found = self._results.get(key)
            if found is None:
                found = self.search(self.vector(query), k)
                _put(self._results, key, found, 64)
        if record:
            self.timings.search_ms = (time.perf_counter() - started) * 1000
        return found

    def cached_results(self, k: int = 20, query: Query | None = None) -> list[SearchResult] | None:
        """The results `results(k, query)` would return if they are cached (e.g. prefetched), else None."""
        query = self.query if query is None else query
        if not query.terms:
            return []
        return self._results.get((query, int(k)))

    def active_directions(self, n: int = 10, mode: str | None = None,
                          query: Query | None = None) -> list[ActiveDirection]:
        """The `mode`'s (default: current) directions most active for `query`, strongest first.

        sae: top activations of encode(q/‖q‖·r) (value = activation); pca: largest |projection|;
        random: the current candidates (value = cosine). [] for an empty query, except random.
        """
        started = time.perf_counter()
        query = self.query if query is None else query
        mode = mode or self._mode
        provider = self.provider(mode)
        if not query.terms:
            out = provider.active(np.zeros(self.store.dim, np.float32), n) if mode == "random" else []
        elif mode == "sae":
            out = self.sae.active_from_code(self.sae_code(query), n)
        else:
            out = provider.active(self.vector(query), n)
        self.timings.active_ms = (time.perf_counter() - started) * 1000
        return out

    def sae_code(self, query: Query | None = None):
        """SAECode (acts, indices) of encode(q/‖q‖·r), from cached per-term projections."""
        if self.sae is None:
            raise SAEError("this index has no SAE (train one with: memetui train-sae)")
        query = self.query if query is None else query
        projected = None
        for term in query.terms:
            part = np.float32(term.weight) * self._projection(term)
            projected = part if projected is None else projected + part
        norm = float(np.linalg.norm(self.vector(query))) if query.terms else 0.0
        if projected is None:
            projected = np.zeros(self.sae.n_latents, np.float32)
        return self.sae.encode_projected(projected, norm)

    def _projection(self, term: Term) -> np.ndarray:
        cached = self._projections.get(term.key)
        if cached is None:
            cached = self.sae.project(self.term_vector(term))
            _put(self._projections, term.key, cached, 256)
        return cached

    # -- term vectors (the Query's resolver) ---------------------------------------------------
    def term_vector(self, term: Term) -> np.ndarray:
        """Unit vector of a term: CLIP text/image embedding, index row, or direction."""
        if term.kind == "text":
            return self.text_vector(term.value)
        if term.kind == "image":
            return self.image_vector(term.value)
        return self.provider(term.value.provider).vector(term.value.id)

    @property
    def embedder(self):
        """The CLIP embedder for query terms (loaded on first use; must match the index model)."""
        if self._embedder is None:
            from .embed import Embedder

            name, pretrained = self._model_override or (self.store.model.name, self.store.model.pretrained)
            embedder = Embedder(name, pretrained, device=self.device)
            self.store.model.check_compatible(embedder.info)
            self._embedder = embedder
        return self._embedder

    @property
    def embedder_loaded(self) -> bool:
        """True once the CLIP model has been loaded."""
        return self._embedder is not None

    def text_vector(self, text: str) -> np.ndarray:
        """Unit embedding of a text (memoised)."""
        if not text.strip():
            raise QueryError("empty text term")
        return self._text_vector(text)

    def _embed_text_uncached(self, text: str) -> np.ndarray:
        started = time.perf_counter()
        vector = self.embedder.embed_texts([text])[0]
        vector.setflags(write=False)
        self.timings.embed_ms = (time.perf_counter() - started) * 1000
        return vector

    def image_vector(self, image: int | str | Path) -> np.ndarray:
        """Unit embedding of an indexed row, or of an image file (embedded on the fly, memoised)."""
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            if not 0 <= int(image) < self.store.count:
                raise QueryError(f"row {image} is not in the index (0..{self.store.count - 1})")
            return np.asarray(self.store.embeddings[int(image)], dtype=np.float32)
        path = Path(image).expanduser()
        key = str(path.resolve()) if path.exists() else str(path)
        if key not in self._path_vectors:
            if not path.is_file():
                raise QueryError(f"image not found: {safe_label(path)}")
            started = time.perf_counter()
            vector = self.embedder.embed_images([path])[0]
            vector.setflags(write=False)
            self.timings.embed_ms = (time.perf_counter() - started) * 1000
            self._path_vectors[key] = vector
        return self._path_vectors[key]

    def search(self, vector: np.ndarray, k: int = 20) -> list[SearchResult]:
        """Top-k images by dot product with `vector` (no caching)."""
        started = time.perf_counter()
        hits = self.ann.search(vector, k)
        paths = self.store.paths(hits.rows)
        self.timings.search_ms = (time.perf_counter() - started) * 1000
        return [
            SearchResult(rank, int(row), path, float(score))
            for rank, (row, path, score) in enumerate(zip(hits.rows, paths, hits.scores), 1)
        ]

    # -- files ---------------------------------------------------------------------------------
    def save_query(self, path: str | Path) -> None:
        """Write the current query as JSON."""
        self.query.save(path)

    def load_query(self, path: str | Path) -> Query:
        """Read a query (or history) file and make its query current (undoable; QueryError)."""
        return self.set_query(Query.load(path))

    def save_history(self, path: str | Path | None = None) -> Path:
        """Write the undo history, mode and step size (default: user data dir/history.json)."""
        from .atomic import write_json_atomic

        path = Path(path) if path else user_data_dir() / "history.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {**self.history.to_dict(), "mode": self._mode, "step_size": self._step_size})
        return path

    def load_history(self, path: str | Path | None = None) -> None:
        """Restore a saved history (its query terms are validated against this index)."""
        from .steer.query import _read_json

        path = Path(path) if path else user_data_dir() / "history.json"
        data = _read_json(path)
        history = QueryHistory.from_dict(data)
        if history.current.terms:
            self.vector(history.current)
        self.history = history
        if data.get("mode") in self.modes:
            self._mode = data["mode"]
        if "step_size" in data:
            self.set_step_size(data["step_size"])

    def bookmark(self, name: str | None = None, path: str | Path | None = None) -> str:
        """`b`: store the current query under `name` (default: its description); returns the name."""
        from .steer.query import load_bookmarks, save_bookmarks

        path = Path(path) if path else user_data_dir() / "bookmarks.json"
        marks = load_bookmarks(path)
        name = name or self.query.describe()
        marks[name] = self.query
        save_bookmarks(path, marks)
        return name

    def bookmarks(self, path: str | Path | None = None) -> dict[str, Query]:
        """Saved bookmarks by name."""
        from .steer.query import load_bookmarks

        return load_bookmarks(Path(path) if path else user_data_dir() / "bookmarks.json")

    def export(self, path: str | Path, k: int = 50) -> Path:
        """`e`: write {"index", "query", "results"} JSON for the current query."""
        from .atomic import write_json_atomic

        path = Path(path)
        results = self.results(k)
        write_json_atomic(path, {
            "index": str(self.store.path),
            "query": self.query.to_dict(),
            "results": [{"rank": r.rank, "row": r.row, "score": r.score, "path": str(r.path)} for r in results],
        })
        return path


def _put(cache: OrderedDict, key, value, limit: int) -> None:
    """Insert as newest, evict the oldest; each step is one atomic dict operation, so the UI
    thread and a worker may fill the same cache at once."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > limit:
        try:
            cache.popitem(last=False)
        except KeyError:  # another thread emptied it meanwhile
            break
