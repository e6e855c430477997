"""The bench family for SAE training: synthetic CLIP-like generators that differ where real data does.

Each member varies what `memetui.sae.synthetic.sparse_dictionary_data` can vary — atoms per row
(4–32), the shared mean's strength, the Zipf exponent of atom frequencies, noise, related-atom
families and d (256–1152) — plus the shipped sample index's real CLIP embeddings. Defaults of the
trainer are judged on all of them at once, never on one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memetui.sae.synthetic import sparse_dictionary_data

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Member:
    """One data set of the family and the SAE shape trained on it."""

    name: str
    rows: int
    d: int = 512
    active: int = 8
    zipf: float = 1.0
    mean_norm: float = 3.0
    noise: float = 0.02
    families: int = 0
    atoms: int = 4096
    n_latents: int = 16384
    k: int = 32
    batch: int = 1024
    real: str | None = None
    """Path (relative to the repo) of a real [N, d] .npy instead of a generator."""

    def describe(self) -> str:
        """Short description for tables."""
        if self.real:
            return f"{self.real} (real CLIP)"
        fam = f", {self.families} families" if self.families else ""
        return (f"{self.rows // 1000}k×{self.d}, {self.active} active of {self.atoms}, zipf {self.zipf}, "
                f"‖μ‖ {self.mean_norm}, noise {self.noise}{fam}")

    def make(self, scale: float = 1.0) -> np.ndarray:
        """The member's [N, d] float32 array (`scale` < 1 shrinks N for quick runs)."""
        if self.real:
            array = np.load(ROOT / self.real, mmap_mode="r")
            return np.asarray(array[: max(int(len(array) * scale), 2000)], dtype=np.float32)
        return sparse_dictionary_data(max(int(self.rows * scale), 4096), self.d, self.atoms, self.active, self.zipf,
                                      self.mean_norm, self.noise, self.families, seed=sum(map(ord, self.name))).x


FAMILY = [
    Member("task", 200_000),
    Member("task-families", 200_000, families=512),
    Member("few-atoms", 60_000, d=256, active=4, zipf=0.5, mean_norm=1.0, noise=0.05),
    Member("many-atoms", 60_000, active=32, zipf=0.8),
    Member("wide-1152", 40_000, d=1152, active=16, zipf=1.2, mean_norm=5.0, noise=0.1),
    Member("noisy-768", 60_000, d=768, active=12, zipf=0.7, mean_norm=2.0, noise=0.3, families=256),
    Member("sample-index", 9063, d=256, n_latents=2048, k=16, batch=256, real="sample_index/embeddings.f16.npy"),
]
"""`task` is issue 16's task as described there (200k × 512, shared mean, 4,096 atoms, 8 active
Zipf-weighted, small noise); `task-families` the same with related atoms (cos ≈ 0.7 within a family)."""
