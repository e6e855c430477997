"""Session: the steering state of one search (mode, selection, step size, undo); threads: memetui.session."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import QueryError, SAEError
from ..index.store import IndexStore
from ..paths import resolve_index
from ..steer.history import QueryHistory
from ..steer.provider import PROVIDERS, ActiveDirection
from ..steer.query import DEFAULT_STEP, NORM_LIMIT, STEP_FACTOR, STEP_RANGE, DirectionRef, Query, Term, check_step_size
from ..steer.sae_directions import SAEDirections
from .codes import SAECodes
from .directions import Directions
from .features import FeatureReadings
from .items import Items
from .library import SessionFiles
from .searcher import ResultPage, Searcher
from .terms import TermVectors


class Session:
    """Searches one index and steers a query along SAE / PCA / random directions."""

    def __init__(self, store: IndexStore, device: str | None = None, model: str | None = None,
                 pretrained: str | None = None, sae: str | Path | bool | SAEDirections | None = None,
                 seed: int = 0, ann=None, defer_sae: bool = False):
        """`sae`: None = the index's first SAE if any, False = none, a name/path (SAEError if it does
        not fit the index) or SAEDirections; `model`: embed query text with another (compatible) model;
        `defer_sae`: do not load a named SAE yet (`sae_pending`; see `load_sae` and `attach_sae`)."""
        self.store = store
        self._sae_pending: str | Path | None = None
        if defer_sae and sae is not False and not isinstance(sae, SAEDirections):
            names = store.sae_names() if sae is None else [sae]
            self._sae_pending, sae = (names[0] if names else None), False
        self.directions = Directions(store, sae, seed)
        self.terms = TermVectors(store, self.directions, device, (model, pretrained) if model else None)
        self.searcher = Searcher(store, ann)
        self.codes = SAECodes(self.directions.sae, self.terms) if self.directions.sae is not None else None
        self.history = QueryHistory()
        self._mode = "sae" if self._sae_pending is not None else self.directions.modes[0]
        self._selection: dict[str, DirectionRef] = {}
        self._step_size = DEFAULT_STEP
        self.files = SessionFiles(self)
        """Saved queries, history, bookmarks and exports of this session."""
        self.items = Items(store, self.searcher)
        """Read-only facts about the rows (item values, OCR text, live count)."""
        self.features = FeatureReadings(store, self.directions, self.terms, self.codes)
        """What the feature panel and gallery show (PanelData, GalleryFeature values)."""

    @classmethod
    def open(cls, index: str | Path | None = None, **kwargs) -> "Session":
        """Open the index named by `index` (or the default index); kwargs as for __init__."""
        return cls(IndexStore.open(resolve_index(index)), **kwargs)

    # -- an SAE loaded after the first results (the app's start) ------------------------------------
    @property
    def sae_pending(self) -> str | Path | None:
        """The SAE still to be loaded (`defer_sae`), None when there is none or it is attached."""
        return self._sae_pending

    def load_sae(self) -> SAEDirections:
        """Load the pending SAE (slow: torch and the weights; safe from a worker: changes nothing here)."""
        from ..steer.sae_directions import load_sae_directions

        if self._sae_pending is None:
            raise SAEError("no SAE is waiting to be loaded")
        return load_sae_directions(self.store, self._sae_pending)

    def attach_sae(self, sae: SAEDirections | None) -> None:
        """Make `sae` (from `load_sae`) this session's SAE, or None: go on without one (sae mode is
        left for the next); on the thread that drives the session."""
        if sae is not None:
            if sae.dim != self.store.dim:
                raise SAEError(f"SAE has dimension {sae.dim}, the index {self.store.dim}")
            codes = SAECodes(sae, self.terms)
            self.directions.sae = sae
            self.codes = codes
            self.features = FeatureReadings(self.store, self.directions, self.terms, codes)
        elif self._mode == "sae":
            self._mode = self.directions.modes[0]
        self._sae_pending = None

    def _check_sae_ready(self, mode: str) -> None:
        if mode == "sae" and self._sae_pending is not None:
            raise SAEError("the SAE features are still loading; try again in a moment")

    def close(self) -> None:
        """Release the index (its database connection); the Session is not used afterwards."""
        self.store.close()

    # -- state -----------------------------------------------------------------------------------
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
        """Modes available (no 'sae' when the index has no SAE; 'sae' while it is loading)."""
        return PROVIDERS if self._sae_pending is not None else self.directions.modes

    @property
    def step_size(self) -> float:
        """α: a step along d adds ±α·‖q‖·d."""
        return self._step_size

    @property
    def selected(self) -> DirectionRef | None:
        """The current mode's selected direction (each mode keeps its own), or None."""
        return self._selection.get(self._mode)

    @property
    def has_sae(self) -> bool:
        """Whether an SAE is loaded."""
        return self.codes is not None

    @property
    def undo_depth(self) -> int:
        """How many undo steps lie behind the current query."""
        return self.history.position

    # -- edits (each returns the new state) ------------------------------------------------------
    def set_query(self, query: Query) -> Query:
        """Make `query` current, undoably (its terms must resolve)."""
        if not isinstance(query, Query):
            raise QueryError("set_query needs a Query")
        self.prepare(query)
        return self.history.push(query)

    def add_image(self, image: int | str | Path, weight: float = 1.0) -> Query:
        """Add an image term: an index row (int) or an image file; weight < 0 is negative."""
        return self.set_query(self.query.add(Term(weight, "image", image)))

    def start_here(self) -> None:
        """Forget the undo history: the current query becomes the first state."""
        self.history = QueryHistory(states=[self.query])

    def select_direction(self, id: int, provider: str | None = None) -> DirectionRef:  # noqa: A002
        """Select direction `id` of `provider` (default: the current mode) for stepping."""
        ref = DirectionRef(provider or self._mode, id)
        self._check_sae_ready(ref.provider)
        self.directions.provider(ref.provider).vector(ref.id)  # validates the id
        self._selection[ref.provider] = ref
        if self.codes is not None:  # W_enc·d in the background: the first step along it is an axpy
            self.codes.prefetch(ref)
        return ref

    def step(self, sign: int = 1) -> Query:
        """Step ±1 along the selected direction (or the mode's top active one): w_d += ±α·‖q‖."""
        if self.selected is None:
            top = self.active_directions(1)
            if not top:
                raise QueryError("no direction to step along: select one or add a query term")
            self.select_direction(top[0].id)
        return self.set_query(self.stepped_query(sign))

    def stepped_query(self, sign: int = 1) -> Query | None:
        """The query `step(sign)` would set (a snapshot for prefetching); None without a selection."""
        direction = self.selected
        if direction is None:
            return None
        current = self.query
        norm = float(np.linalg.norm(self.vector(current))) if current.terms else 1.0
        if norm > NORM_LIMIT:
            current, norm = current.scaled(1.0 / norm), 1.0
        return current.step(direction, sign, norm, self._step_size)

    def set_step_size(self, step_size: float) -> float:
        """Set α (clamped to STEP_RANGE)."""
        self._step_size = float(np.clip(check_step_size(step_size), *STEP_RANGE))
        return self._step_size

    def scale_step(self, larger: bool) -> float:
        """`]` / `[`: α ×= or ÷= STEP_FACTOR."""
        return self.set_step_size(self._step_size * (STEP_FACTOR if larger else 1 / STEP_FACTOR))

    def set_mode(self, mode: str) -> str:
        """Switch to `mode` (its own selection comes back with it)."""
        if mode not in self.modes:
            raise QueryError(f"mode {mode!r} is not available (available: {', '.join(self.modes)})")
        self._mode = mode
        return mode

    def cycle_mode(self) -> str:
        """`m`: sae → pca → random → sae (skipping sae without an SAE)."""
        modes = self.modes
        return self.set_mode(modes[(modes.index(self._mode) + 1) % len(modes)])

    def new_random_direction(self) -> ActiveDirection:
        """`n`: a new random direction, selected (switches to random mode)."""
        self.set_mode("random")
        return self.features.reading(self.select_direction(self.directions.random.new(), "random"), self.query)

    def undo(self) -> bool:
        """`u`: restore the previous query state exactly; False if there is none."""
        return self.history.undo()

    def redo(self) -> bool:
        """`ctrl+r`: re-apply the undone state; False if there is none."""
        return self.history.redo()

    # -- answers (safe from workers, given snapshots) ----------------------------------------------
    def prepare(self, query: Query) -> None:
        """Resolve every term of `query` (embeds new text/image terms: slow the first time)."""
        if query.terms:
            self.vector(query)

    def vector(self, query: Query | None = None) -> np.ndarray:
        """q = Σ wᵢ eᵢ of `query` (default: current), float32 [d], read-only."""
        return self.terms.query_vector(self.query if query is None else query)

    def results(self, k: int = 20, query: Query | None = None) -> ResultPage:
        """Top-k images for `query` (default: current) with this call's timing; [] for an empty query."""
        return self.searcher.page(self.query if query is None else query, k, self.terms.query_vector)

    def cached_results(self, k: int = 20, query: Query | None = None):
        """The results `results(k, query)` would return when they are cached, else None."""
        return self.searcher.cached(self.query if query is None else query, k)

    def active_directions(self, n: int = 10, mode: str | None = None,
                          query: Query | None = None) -> list[ActiveDirection]:
        """The `mode`'s (default: current) directions most active for `query`, strongest first."""
        self._check_sae_ready(mode or self._mode)
        return self.directions.active(mode or self._mode, self.query if query is None else query, n,
                                      self.terms, self.codes)
