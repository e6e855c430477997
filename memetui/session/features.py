"""FeatureReadings: what the feature panel and the feature gallery show, as value objects.

- `panel(mode, query, selected, results)`: the selected direction pinned (its value for the
  query and its weight in it), the query's most active directions, and the directions most
  active across the given results;
- `gallery()`: every live SAE feature with its activation rate over all rows and its top
  exemplars (encoded once, in chunks, on first call; cached here, never written to the index).

Safe from workers given snapshots (see memetui.session): every cache here has its own lock.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from ..index.display import display_files
from ..lru import LRUCache
from ..steer.provider import ActiveDirection, unit_and_norm
from ..steer.query import DirectionRef, Query
from .feature_stats import EXEMPLARS, FeatureStats, feature_stats

RESULT_CACHE = 64
PANEL_ROWS = 12
"""Directions listed per panel section."""


class PinnedDirection(NamedTuple):
    """The direction being stepped along, as the panel lists it first."""

    id: int
    label: str
    value: float
    """Its reading for the query: SAE ReLU pre-activation (also outside the top-k), PCA projection, cosine."""
    weight: float
    """Its direction term's weight in the query (0 when the query has none)."""


class PanelData(NamedTuple):
    """Everything the feature panel shows for one query in one mode."""

    mode: str
    pinned: PinnedDirection | None
    """The mode's selected direction, or None when nothing is selected yet."""
    query: list[ActiveDirection]
    """Directions most active for the query, strongest first."""
    results: list[ActiveDirection]
    """Directions most active across the results (mean SAE code / projection / cosine), strongest first."""


class Exemplar(NamedTuple):
    """One top-activating image of a feature."""

    row: int
    path: Path
    thumbnail: Path


class GalleryFeature(NamedTuple):
    """A live SAE feature as the gallery lists it."""

    id: int
    label: str
    rate: float
    """Fraction of all live rows whose top-k code contains the feature."""
    exemplars: tuple[Exemplar, ...]
    """Its strongest rows, strongest first."""


class FeatureReadings:
    """Panel data and the feature gallery of one index's directions (a Session part)."""

    def __init__(self, store, directions, terms, codes):
        self._store, self._directions, self._terms, self._codes = store, directions, terms, codes
        self._of_results: LRUCache[tuple, list[ActiveDirection]] = LRUCache(RESULT_CACHE)
        self._stats: FeatureStats | None = None
        self._gallery: list[GalleryFeature] | None = None
        self._stats_lock = threading.Lock()

    # -- the panel -------------------------------------------------------------------------------
    def panel(self, mode: str, query: Query, selected: DirectionRef | None, results: Sequence,
              n: int = PANEL_ROWS) -> PanelData:
        """PanelData for `query` in `mode`; `results` are the visible SearchResults (rows are read)."""
        pinned = self.pinned(selected, query) if selected is not None and selected.provider == mode else None
        active = self._directions.active(mode, query, n, self._terms, self._codes)
        return PanelData(mode, pinned, active, self.of_rows(mode, [r.row for r in results], n))

    def pinned(self, ref: DirectionRef, query: Query) -> PinnedDirection:
        """Direction `ref` as the panel pins it: its `reading` for `query` and its term's weight there."""
        reading = self.reading(ref, query)
        term = query.direction_terms().get(ref)
        return PinnedDirection(reading.id, reading.label, reading.value, term.weight if term else 0.0)

    def reading(self, ref: DirectionRef, query: Query) -> ActiveDirection:
        """Direction `ref` with its value for `query`; SAE: max(0, pre-activation), read even when
        the latent is outside the query's top-k; PCA: (q̂ − μ)·v; random: cos(q, v); 0 when empty."""
        provider = self._directions.provider(ref.provider)
        value = 0.0
        if query.terms and ref.provider == "sae":
            value = max(0.0, float(self._codes.pre_activations(query)[ref.id]))
        elif query.terms:
            unit, norm = unit_and_norm(self._terms.query_vector(query))
            if norm > 0:
                centre = provider.pca.mean if ref.provider == "pca" else 0.0
                value = float(provider.vector(ref.id) @ (unit - centre))
        return ActiveDirection(ref.id, provider.label(ref.id), value)

    def of_rows(self, mode: str, rows: Sequence[int], n: int = PANEL_ROWS) -> list[ActiveDirection]:
        """The `mode`'s directions most active across index `rows`: SAE: top of the mean code
        mean(TopK(encode(x_i))); PCA: largest |(mean x_i − μ)·v|; random: the candidates with
        mean cos(x_i, v). Cached by rows."""
        if not rows:
            return []
        provider = self._directions.provider(mode)
        key = (mode, tuple(int(r) for r in rows), n, len(provider) if mode == "random" else 0)
        found = self._of_results.get(key)
        if found is not None:
            return found
        x = np.asarray(self._store.embeddings[sorted(set(key[1]))], dtype=np.float32)
        if mode == "sae":
            sae = provider
            mean = sae.dense(sae.encode(x * np.float32(sae.input_norm))).mean(0)
            top = np.argsort(-mean, kind="stable")[:n]
            found = [ActiveDirection(int(j), sae.label(int(j)), float(mean[j])) for j in top if mean[j] > 0]
        elif mode == "pca":
            proj = provider.pca.components @ (x.mean(0) - provider.pca.mean)
            top = np.argsort(-np.abs(proj), kind="stable")[:n]
            found = [ActiveDirection(int(j), provider.label(int(j)), float(proj[j])) for j in top]
        else:
            mean = x.mean(0)
            found = [ActiveDirection(j, provider.label(j), float(provider.vector(j) @ mean))
                     for j in provider.candidates[:n]]
        return self._of_results.put(key, found)

    # -- the gallery -----------------------------------------------------------------------------
    def stats(self) -> FeatureStats:
        """Rates and exemplars of every SAE latent over all live rows (computed once; slow the first time)."""
        with self._stats_lock:
            if self._stats is None:
                self._stats = feature_stats(self._directions.provider("sae"), self._store.embeddings,
                                            self._store.live_mask(), EXEMPLARS)
            return self._stats

    def gallery(self) -> list[GalleryFeature]:
        """Every live SAE feature (rate > 0) with label, rate and exemplars, most frequent first."""
        stats = self.stats()
        with self._stats_lock:
            if self._gallery is None:
                sae = self._directions.provider("sae")
                live = np.argsort(-stats.rates, kind="stable")[: int((stats.rates > 0).sum())]
                wanted = sorted({int(r) for r in stats.exemplars[live].ravel() if r >= 0})
                files = {}
                for lo in range(0, len(wanted), 500):  # SQLite's limit on query parameters
                    chunk = wanted[lo:lo + 500]
                    files.update(zip(chunk, display_files(self._store, chunk)))
                self._gallery = [
                    GalleryFeature(int(j), sae.label(int(j)), float(stats.rates[j]),
                                   tuple(Exemplar(int(r), files[int(r)].path, files[int(r)].thumb) for r in stats.exemplars[j] if r >= 0))
                    for j in live]
            return self._gallery
