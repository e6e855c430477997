"""Per-feature statistics of an SAE over every live row of an index: activation rate and top exemplars.

Rows (unit vectors, as the index stores them) are encoded in chunks with the SAE's encoder,
z = TopK_k(ReLU(W_enc x̃ + b_enc)) with x̃ = (row·r − b_pre)/s, top-k by torch.topk, so memory stays O(chunk · n_latents) however large the index is. After each chunk
only the best `exemplars` (latent, activation, row) triples per latent are kept.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..steer.sae_directions import SAEDirections

CHUNK = 2048
EXEMPLARS = 8


class FeatureStats(NamedTuple):
    """What every latent does over the index."""

    rates: np.ndarray
    """[n_latents] float64: fraction of the encoded rows in whose top-k code the latent fires (> 0)."""
    exemplars: np.ndarray
    """[n_latents, m] int64: rows with the latent's largest activations, strongest first; -1 pads."""
    rows: int
    """How many rows were encoded."""


def _keep_top(latents: np.ndarray, acts: np.ndarray, rows: np.ndarray, m: int):
    """The `m` strongest (latent, act, row) triples per latent, sorted by latent then act (desc)."""
    order = np.lexsort((rows, -acts, latents))
    latents, acts, rows = latents[order], acts[order], rows[order]
    rank = np.arange(len(latents)) - np.searchsorted(latents, latents, side="left")
    keep = rank < m
    return latents[keep], acts[keep], rows[keep]


def _encode(sae: SAEDirections, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unsorted top-k (acts [c, k] float32, indices [c, k] int64) of unit rows [c, d] at norm r."""
    import torch

    pre = torch.from_numpy(sae.pre_activations(sae.project(rows), 1.0))  # unit rows: x̃ = (row·r − b_pre)/s
    acts, indices = torch.topk(pre, sae.k, dim=1, sorted=False)
    return acts.numpy(), indices.numpy().astype(np.int64)


def feature_stats(sae: SAEDirections, embeddings: np.ndarray, live: np.ndarray | None = None,
                  exemplars: int = EXEMPLARS, chunk: int = CHUNK) -> FeatureStats:
    """Activation rate and top-`exemplars` rows of every latent over the live rows of `embeddings` ([N, d])."""
    n = sae.n_latents
    selected = None if live is None or live.all() else np.flatnonzero(live)
    total = len(embeddings) if selected is None else len(selected)
    counts = np.zeros(n, np.int64)
    best = (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))
    for lo in range(0, total, chunk):
        rows = np.arange(lo, min(lo + chunk, total)) if selected is None else selected[lo:lo + chunk]
        block = embeddings[lo:lo + chunk] if selected is None else embeddings[rows]
        acts, indices = _encode(sae, np.asarray(block, dtype=np.float32))
        fired = acts > 0
        latents = indices[fired]
        counts += np.bincount(latents, minlength=n)
        found = (latents, acts[fired], np.broadcast_to(rows[:, None], indices.shape)[fired])
        best = _keep_top(*(np.concatenate(pair) for pair in zip(best, found)), exemplars)
    table = np.full((n, exemplars), -1, np.int64)
    latents, _, rows = best
    rank = np.arange(len(latents)) - np.searchsorted(latents, latents, side="left")
    table[latents, rank] = rows
    return FeatureStats(counts / max(total, 1), table, total)
