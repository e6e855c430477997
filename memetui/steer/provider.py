"""The steering-direction protocol shared by the SAE, PCA and random providers.

Every provider hands out unit vectors ``v ∈ R^d`` by integer id, a label for each (raw text:
escaped where it is shown, see memetui/text.py), and the directions "most active" for a query q.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from ..errors import QueryError

PROVIDERS: tuple[str, ...] = ("sae", "pca", "random")
"""Provider names, in the order `m` cycles through them."""


class ActiveDirection(NamedTuple):
    """A direction listed for a query: its id, label and value (activation / projection)."""

    id: int
    label: str
    value: float


@runtime_checkable
class DirectionProvider(Protocol):
    """What the Session needs of a source of steering directions."""

    name: str
    """'sae', 'pca' or 'random' (the `provider` of a direction term)."""
    dim: int
    """Dimension d of the vectors."""

    def __len__(self) -> int:
        """Number of directions (ids are 0 .. len-1; random: ids handed out so far)."""

    def vector(self, id: int) -> np.ndarray:  # noqa: A002
        """Unit direction [d] float32 (read-only)."""

    def label(self, id: int) -> str:  # noqa: A002
        """Raw label text."""

    def active(self, q: np.ndarray, n: int = 10) -> list[ActiveDirection]:
        """The directions most active for query vector q ([d], any norm), strongest first."""


def check_direction_id(provider: str, id: int, count: int) -> int:  # noqa: A002
    """`id` as an int, or QueryError unless 0 <= id < count."""
    if isinstance(id, bool) or not isinstance(id, (int, np.integer)) or not 0 <= int(id) < count:
        raise QueryError(f"no {provider} direction {id!r} (0..{count - 1})")
    return int(id)


def unit_and_norm(q: np.ndarray) -> tuple[np.ndarray, float]:
    """(q/‖q‖, ‖q‖) as float32 [d]; q itself when it is zero."""
    q = np.asarray(q, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(q))
    return (q / norm if norm > 0 else q), norm
