"""Random directions: fixed-seed Gaussian unit vectors, the baseline SAE features are compared with.

v_id = unit Gaussian from ``default_rng([seed, id])``, reproducible by seed; `new()` adds a
candidate; active = the current candidates, newest first, with q̂·v.
"""

from __future__ import annotations

import numpy as np

from ..errors import QueryError
from .provider import ActiveDirection, unit_and_norm


class RandomDirections:
    """Fixed-seed Gaussian unit directions: id j is default_rng([seed, j]), so seeds reproduce."""

    name = "random"

    def __init__(self, dim: int, seed: int = 0, candidates: int = 8):
        self.dim, self.seed = int(dim), int(seed)
        self._ids = list(range(candidates))
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return max(self._ids) + 1 if self._ids else 0

    @property
    def candidates(self) -> list[int]:
        """Current candidate ids, newest first."""
        return self._ids[::-1]

    def new(self) -> int:
        """Hand out a new direction id (the next one of this seed) and make it a candidate."""
        new_id = len(self)
        self._ids.append(new_id)
        return new_id

    def vector(self, id: int) -> np.ndarray:  # noqa: A002
        """Direction `id` ([d] float32, unit norm); any id ≥ 0 is valid (reproducible by seed)."""
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)) or id < 0:
            raise QueryError(f"no random direction {id!r}")
        id = int(id)  # noqa: A001
        if id not in self._cache:
            v = np.random.default_rng([self.seed, id]).standard_normal(self.dim)
            v = (v / np.linalg.norm(v)).astype(np.float32)
            v.setflags(write=False)
            self._cache[id] = v
        return self._cache[id]

    def label(self, id: int) -> str:  # noqa: A002
        """'random #id (seed s)'."""
        return f"random #{int(id)} (seed {self.seed})"

    def cosine(self, id: int, q: np.ndarray) -> float:  # noqa: A002
        """cos(v_id, q); 0 for a zero q."""
        unit, _ = unit_and_norm(q)
        return float(self.vector(id) @ unit)

    def active(self, q: np.ndarray, n: int = 10) -> list[ActiveDirection]:
        """The current candidates (newest first) with their cosine to q."""
        unit, _ = unit_and_norm(q)
        return [ActiveDirection(j, self.label(j), float(self.vector(j) @ unit)) for j in self.candidates[:n]]
