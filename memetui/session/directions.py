"""Directions: the SAE, PCA and random providers of one index, by name (PCA computed on first use)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import QueryError, SAEError
from ..steer.pca import PCADirections
from ..steer.provider import PROVIDERS, ActiveDirection, DirectionProvider
from ..steer.query import DirectionRef, Query
from ..steer.random_directions import RandomDirections
from ..steer.sae_directions import SAEDirections, load_sae_directions


class Directions:
    """The direction providers a Session steers with."""

    def __init__(self, store, sae: str | Path | bool | SAEDirections | None = None, seed: int = 0):
        """`sae`: None = the index's first SAE if any, False = none, a name/path, or SAEDirections."""
        self._store = store
        if isinstance(sae, SAEDirections):
            if sae.dim != store.dim:
                raise SAEError(f"SAE has dimension {sae.dim}, the index {store.dim}")
            self.sae: SAEDirections | None = sae
        else:
            self.sae = None if sae is False else load_sae_directions(store, sae)
        self.random = RandomDirections(store.dim, seed=seed)
        self._pca: PCADirections | None = None
        self._pca_lock = threading.Lock()

    @property
    def pca_ready(self) -> bool:
        """Whether PCA has been computed (or read from its cache): `provider('pca')` then returns at once."""
        return self._pca is not None

    @property
    def modes(self) -> tuple[str, ...]:
        """Provider names available (no 'sae' without an SAE)."""
        return PROVIDERS if self.sae is not None else PROVIDERS[1:]

    def provider(self, name: str) -> DirectionProvider:
        """The provider `name`; PCA is computed (or read from its cache) on first use."""
        if name == "sae":
            if self.sae is None:
                raise SAEError("this index has no SAE")
            return self.sae
        if name == "pca":
            with self._pca_lock:
                if self._pca is None:
                    self._pca = PCADirections.for_store(self._store)
            return self._pca
        if name == "random":
            return self.random
        raise QueryError(f"unknown mode {name!r} (expected one of {', '.join(PROVIDERS)})")

    def label(self, direction: DirectionRef | tuple[str, int]) -> str:
        """Raw label of a direction."""
        provider, id_ = direction
        return self.provider(provider).label(id_)

    def active(self, mode: str, query: Query, n: int, terms, codes) -> list[ActiveDirection]:
        """The `mode`'s directions most active for `query` (SAE: from `codes`; others: from q)."""
        provider = self.provider(mode)
        if not query.terms:
            return provider.active(np.zeros(self._store.dim, np.float32), n) if mode == "random" else []
        if mode == "sae":
            return provider.active_from_code(codes.code(query), n)
        return provider.active(terms.query_vector(query), n)
