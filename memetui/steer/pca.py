"""PCA directions: principal components of an index's rows, computed once and cached on disk.

Above SAMPLE_ROWS live rows they are fitted on a seeded uniform sample of that many rows (the
d×d covariance of 50,000 rows is as good a basis for steering as that of a million, at 1/20 of the
reading); the cache key records the sample size and seed.

active = the components with the largest |(q/‖q‖ − μ)·v_j|.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import IndexFormatError
from .provider import ActiveDirection, check_direction_id, unit_and_norm

log = logging.getLogger(__name__)
PCA_FILE = "pca.npz"
PCA_FORMAT = 1
MAX_COMPONENTS = 128
SAMPLE_ROWS = 50_000
"""Above this many live rows PCA is fitted on a seeded sample of this many."""
SAMPLE_SEED = 0


@dataclass(frozen=True)
class PCAResult:
    """Principal components of an index: rows of `components` are orthonormal."""

    mean: np.ndarray
    """[d] float32 mean of the live rows."""
    components: np.ndarray
    """[m, d] float32, orthonormal rows, by decreasing variance; sign: largest |entry| positive."""
    explained: np.ndarray
    """[m] float32 fraction of total variance per component."""


def compute_pca(embeddings: np.ndarray, rows: np.ndarray | None = None, max_components: int = MAX_COMPONENTS,
                chunk: int = 16384) -> PCAResult:
    """PCA of embeddings[rows] via the d×d covariance (chunked float64 accumulation, one eigh)."""
    n_rows = len(embeddings) if rows is None else len(rows)
    d = embeddings.shape[1]
    if n_rows < 2:
        raise IndexFormatError("PCA needs at least 2 rows in the index")
    total = np.zeros(d, np.float64)
    gram = np.zeros((d, d), np.float64)
    for lo in range(0, n_rows, chunk):
        sel = slice(lo, lo + chunk) if rows is None else rows[lo:lo + chunk]
        x = np.asarray(embeddings[sel], dtype=np.float32)
        total += x.sum(0, dtype=np.float64)
        gram += (x.T @ x).astype(np.float64)
    mean = total / n_rows
    cov = gram / n_rows - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    m = min(max_components, d, n_rows - 1)
    values, vectors = np.clip(values[order], 0, None), vectors[:, order][:, :m].T
    signs = np.sign(vectors[np.arange(m), np.abs(vectors).argmax(1)])
    vectors = vectors * signs[:, None]
    explained = values[:m] / max(values.sum(), 1e-30)
    return PCAResult(mean.astype(np.float32), np.ascontiguousarray(vectors, np.float32), explained.astype(np.float32))


class PCADirections:
    """Principal components of an index's rows (see `for_store` for where they are cached)."""

    name = "pca"

    def __init__(self, pca: PCAResult):
        self.pca = pca
        self.dim = int(pca.components.shape[1])
        pca.components.setflags(write=False)

    @classmethod
    def for_store(cls, store, max_components: int = MAX_COMPONENTS,
                  sample_rows: int = SAMPLE_ROWS) -> "PCADirections":
        """The index's PCA: from INDEX/pca.npz (shipped) or the user cache when it matches the index
        (count, update time, model, sample), else computed (on a seeded sample of `sample_rows` rows
        above that many) and cached in the user cache folder (an index folder is never written by
        a reader: it may be read-only or shared)."""
        key = [PCA_FORMAT, store.count, store.manifest.updated, max_components]
        if store.count > sample_rows:  # the key says what was fitted: a sample of this size and seed
            key += [sample_rows, SAMPLE_SEED]
        key = np.array(key, np.float64)
        cached = _user_cache_file(store)
        for path in (store.path / PCA_FILE, cached):
            pca = _read_cache(path, key, store.model.sha256)
            if pca is not None:
                return cls(pca)
        live = store.live_mask()
        rows = fit_rows(live, sample_rows)
        if rows is None and not live.all():
            rows = np.flatnonzero(live)
        pca = compute_pca(store.embeddings, rows, max_components)
        try:
            from ..atomic import atomic_path

            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, key=key, model=np.array(store.model.sha256), mean=pca.mean,
                         components=pca.components, explained=pca.explained)
        except OSError as exc:  # no writable cache folder: keep it in memory
            log.info("cannot cache %s: %s", cached, exc)
        return cls(pca)

    def __len__(self) -> int:
        return int(self.pca.components.shape[0])

    def vector(self, id: int) -> np.ndarray:  # noqa: A002
        """Component `id` ([d] float32, unit norm)."""
        return self.pca.components[check_direction_id("pca", id, len(self))]

    def label(self, id: int) -> str:  # noqa: A002
        """'PC3 (4.1% var)'."""
        id = check_direction_id("pca", id, len(self))  # noqa: A001
        return f"PC{id + 1} ({self.pca.explained[id]:.1%} var)"

    def active(self, q: np.ndarray, n: int = 10) -> list[ActiveDirection]:
        """Components with the largest |(q/‖q‖ − μ)·v_j|, with the signed projection."""
        unit, norm = unit_and_norm(q)
        if norm == 0:
            return []
        proj = self.pca.components @ (unit - self.pca.mean)
        top = np.argsort(-np.abs(proj), kind="stable")[:n]
        return [ActiveDirection(int(j), self.label(int(j)), float(proj[j])) for j in top]


def fit_rows(live: np.ndarray, sample_rows: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> np.ndarray | None:
    """The rows PCA is fitted on: None (every live row) when there are at most `sample_rows` rows,
    else a seeded uniform sample of `sample_rows` live rows, ascending (read in file order)."""
    if len(live) <= sample_rows:
        return None
    candidates = np.flatnonzero(live)
    if len(candidates) <= sample_rows:
        return candidates
    picked = np.random.default_rng(seed).choice(len(candidates), sample_rows, replace=False)
    return candidates[np.sort(picked)]


def _user_cache_file(store):
    """The user-cache file of this index's PCA."""
    from ..paths import cache_dir_for

    return cache_dir_for(store) / PCA_FILE


def _read_cache(path, key: np.ndarray, model_sha: str) -> PCAResult | None:
    """The PCA stored at `path` when its key and model match, else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if np.array_equal(data["key"], key) and str(data["model"]) == model_sha:
                return PCAResult(data["mean"], data["components"], data["explained"])
    except (OSError, KeyError, ValueError):
        pass
    return None
