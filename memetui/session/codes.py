"""SAECodes: the SAE code of a query from cached per-term projections (a step costs O(n_latents)).

With x̃ = (q/‖q‖·r − b_pre)/s, the pre-activation W_enc x̃ + b_enc is affine in W_enc q, and
W_enc q = Σ wᵢ (W_enc eᵢ): one cached [n_latents] projection per term, summed in term order.

A step q → q + α·d changes only d's weight, so its code costs one axpy over n latents per term
plus a top-k, once W_enc d is cached. That projection (one n×d matrix-vector product, ~300 MB of
W_enc read at 65,536 × 1152) is computed when the direction is selected, by a background
thread (`prefetch`), so the first step along it finds it ready. The sum is recomputed from the
per-term projections for every query, never carried from the previous one: a query's code does
not depend on the path that reached it (undo gives the same code bitwise) and it equals a full
encode of q up to float32 rounding of the sum (tests/test_session.py checks the top-k).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..lru import LRUCache
from ..steer.query import DirectionRef, Query, Term
from ..steer.sae_directions import SAECode, SAEDirections
from .terms import TermVectors

PROJECTION_CACHE = 256


class SAECodes:
    """Top-k SAE codes of queries, from W_enc·eᵢ cached per term."""

    def __init__(self, sae: SAEDirections, terms: TermVectors):
        self.sae = sae
        self._terms = terms
        self._projections: LRUCache[tuple, np.ndarray] = LRUCache(PROJECTION_CACHE)
        self._lock = threading.Lock()
        self._pending: dict[tuple, Future] = {}
        self._worker: ThreadPoolExecutor | None = None

    def projection(self, term: Term) -> np.ndarray:
        """W_enc eᵢ of a term's unit vector ([n_latents] float32), cached by the term's key."""
        cached = self._projections.get(term.key)
        if cached is not None:
            return cached
        with self._lock:
            pending = self._pending.get(term.key)
        if pending is not None and not pending.cancelled():
            found = pending.result()  # being prefetched: wait for it rather than compute it twice
            if found is not None:
                return found
        return self._projections.put(term.key, self.sae.project(self._terms.term_vector(term)))

    def prefetch(self, ref: DirectionRef) -> Future | None:
        """Start computing W_enc·d of direction `ref` in the background (None when already cached).

        Only the newest request waits its turn: one not yet started is dropped by a newer one
        (the panel highlight moving over many directions costs one projection, not one each).
        """
        term = Term(1.0, "direction", DirectionRef(*ref))
        if term.key in self._projections:
            return None
        with self._lock:
            found = self._pending.get(term.key)
            if found is not None and not found.cancelled():
                return found
            for key, future in list(self._pending.items()):
                if future.cancel():
                    del self._pending[key]
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="sae-projection")
            future = self._pending[term.key] = self._worker.submit(self._compute, term)
            return future

    def _compute(self, term: Term) -> np.ndarray | None:
        """Projection of `term` into the cache (prefetch worker); None when the direction is gone."""
        try:
            return self._projections.put(term.key, self.sae.project(self._terms.term_vector(term)))
        except Exception:  # noqa: BLE001 - a prefetch never raises; projection() recomputes and reports
            return None
        finally:
            with self._lock:
                self._pending.pop(term.key, None)

    def code(self, query: Query) -> SAECode:
        """SAECode (acts, indices) of encode(q/‖q‖·r), strongest first; empty for an empty query."""
        if not query.terms:
            return self.sae.encode_projected(np.zeros(self.sae.n_latents, np.float32), 0.0)
        return self.sae.encode_projected(*self._projected(query))

    def pre_activations(self, query: Query) -> np.ndarray:
        """W_enc x̃ + b_enc of the query ([n_latents] float32, before ReLU and top-k); zeros when empty."""
        projected, norm = self._projected(query) if query.terms else (None, 0.0)
        return self.sae.pre_activations(projected, norm) if norm > 0 else np.zeros(self.sae.n_latents, np.float32)

    def _projected(self, query: Query) -> tuple[np.ndarray, float]:
        """(W_enc q summed from per-term projections in term order, ‖q‖) of a non-empty query."""
        projected = None
        for term in query.terms:
            part = np.float32(term.weight) * self.projection(term)
            projected = part if projected is None else projected + part
        return projected, float(np.linalg.norm(self._terms.query_vector(query)))
