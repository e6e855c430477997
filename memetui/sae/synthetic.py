"""Synthetic CLIP-like embeddings from a known sparse dictionary (tests and benchmarks).

x = normalise( μ + Σ_{j∈S} a_j D_j + ε )
  μ      a shared mean direction (norm `mean_norm`; CLIP embeddings have a large common component)
  D      [m, d] unit atoms; S: `active` atoms per sample drawn with Zipf-like frequencies p_j ∝ j^-α
  families  when > 0, atoms are normalise(parent + own direction) around `families` shared parents
  a_j    exponential magnitudes; ε isotropic noise carrying `noise` of the signal's variance
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


class SyntheticData(NamedTuple):
    """Samples x [N, d] (unit rows) and the dictionary D [m, d] (unit rows) that made them."""

    x: np.ndarray
    dictionary: np.ndarray


def sparse_dictionary_data(n: int, d: int = 512, atoms: int = 4096, active: int = 16, zipf: float = 0.5,
                           mean_norm: float = 3.0, noise: float = 0.02, families: int = 0, seed: int = 0,
                           dtype=np.float32, chunk: int = 16384) -> SyntheticData:
    """n unit vectors of dimension d built from `active` of `atoms` dictionary atoms each (see module doc)."""
    gen = torch.Generator().manual_seed(seed)
    dictionary = F.normalize(torch.randn(atoms, d, generator=gen), dim=1)
    if families:  # atoms come in families around shared parents (cos ≈ 0.7), like CLIP's related concepts
        parents = F.normalize(torch.randn(families, d, generator=gen), dim=1)
        dictionary = F.normalize(parents[torch.arange(atoms) % families] + dictionary, dim=1)
    mean = F.normalize(torch.randn(d, generator=gen), dim=0) * mean_norm
    probs = torch.arange(1, atoms + 1, dtype=torch.float64).pow(-zipf)
    probs = (probs / probs.sum()).float()
    out = np.empty((n, d), dtype=dtype)
    signal = float(active) / d  # per-dimension variance of Σ a D with E a² ≈ 1
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        idx = torch.multinomial(probs.expand(b, atoms), active, replacement=False, generator=gen)
        mags = torch.empty(b, active).exponential_(1.0, generator=gen).mul_(0.7071)
        x = F.embedding_bag(idx, dictionary, per_sample_weights=mags, mode="sum") + mean
        x += torch.randn(b, d, generator=gen) * (noise * signal) ** 0.5
        out[start:start + b] = F.normalize(x, dim=1).numpy().astype(dtype)
    return SyntheticData(out, dictionary.numpy())
