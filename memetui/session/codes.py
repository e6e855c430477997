"""SAECodes: the SAE code of a query from cached per-term projections (a step costs O(n_latents)).

With x̃ = (q/‖q‖·r − b_pre)/s, the pre-activation W_enc x̃ + b_enc is affine in W_enc q, and
W_enc q = Σ wᵢ (W_enc eᵢ): one cached [n_latents] projection per term, summed in term order.
"""

from __future__ import annotations

import numpy as np

from ..lru import LRUCache
from ..steer.query import Query, Term
from ..steer.sae_directions import SAECode, SAEDirections
from .terms import TermVectors

PROJECTION_CACHE = 256


class SAECodes:
    """Top-k SAE codes of queries, from W_enc·eᵢ cached per term."""

    def __init__(self, sae: SAEDirections, terms: TermVectors):
        self.sae = sae
        self._terms = terms
        self._projections: LRUCache[tuple, np.ndarray] = LRUCache(PROJECTION_CACHE)

    def projection(self, term: Term) -> np.ndarray:
        """W_enc eᵢ of a term's unit vector ([n_latents] float32), cached by the term's key."""
        cached = self._projections.get(term.key)
        if cached is None:
            cached = self._projections.put(term.key, self.sae.project(self._terms.term_vector(term)))
        return cached

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
