"""Steering directions: one protocol, three providers (SAE decoder columns, PCA, random).

Every provider hands out unit vectors ``v ∈ R^d`` by integer id, a terminal-safe label for each,
and the directions "most active" for a query vector q:

- `SAEDirections`: v_j = W_dec[:, j]; active = top entries of ``encode(q/‖q‖ · r)`` where r is the
  data norm the SAE was trained at (1 for unit CLIP rows), i.e. with x̃ = (x − b_pre)/s::

      z = TopK_k(ReLU(W_enc x̃ + b_enc))

  Because the pre-activation is affine in q, ``W_enc q`` is linear in the query's terms: the
  Session caches ``W_enc eᵢ`` per term (one [n]-vector each) and a step costs one axpy over n
  latents instead of an n×d matvec (`encode_projected`).
- `PCADirections`: principal components of the index rows (computed once, cached in
  INDEX/pca.npz); active = largest |(q/‖q‖ − μ)·v_j|.
- `RandomDirections`: v_id = unit Gaussian from ``default_rng([seed, id])``; reproducible by seed;
  `new()` adds a candidate; active = the current candidates, newest first, with q̂·v.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import IndexFormatError, SAEError

log = logging.getLogger(__name__)
PCA_FILE = "pca.npz"
PCA_FORMAT = 1


class ActiveDirection(NamedTuple):
    """A direction listed for a query: its id, label and value (activation / projection)."""

    id: int
    label: str
    value: float


class SAECode(NamedTuple):
    """Top-k SAE code of one or more vectors, strongest first."""

    acts: np.ndarray
    """[..., k] float32 activations (≥ 0)."""
    indices: np.ndarray
    """[..., k] int64 latent ids."""


def safe_label(text: object) -> str:
    """`text` with control characters (ESC, CR, BEL, C1, …) escaped as ``\\x1b`` etc.

    Labels come from files (SAE JSON, vocabularies); they must never drive the terminal.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


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
        """Terminal-safe label."""

    def active(self, q: np.ndarray, n: int = 10) -> list[ActiveDirection]:
        """The directions most active for query vector q ([d], any norm), strongest first."""


def _check_id(provider: str, id: int, count: int) -> int:  # noqa: A002
    from ..errors import QueryError

    if isinstance(id, bool) or not isinstance(id, (int, np.integer)) or not 0 <= int(id) < count:
        raise QueryError(f"no {provider} direction {id!r} (0..{count - 1})")
    return int(id)


def _unit(q: np.ndarray) -> tuple[np.ndarray, float]:
    q = np.asarray(q, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(q))
    return (q / norm if norm > 0 else q), norm


# -- SAE ---------------------------------------------------------------------------------------
class SAEDirections:
    """Decoder columns of a top-k SAE as directions; fast single-query encoder (no autograd)."""

    name = "sae"

    def __init__(self, w_enc, b_enc, b_pre, w_dec, k: int, scale: float = 1.0, input_norm: float = 1.0,
                 labels: Mapping[int, str] | Sequence[str] | None = None, sae_name: str = "sae"):
        """Shapes: w_enc [n, d], b_enc [n], b_pre [d], w_dec [d, n]; x̃ = (x − b_pre)/scale."""
        import torch

        w_enc = torch.as_tensor(np.asarray(w_enc, dtype=np.float32)).contiguous()
        n, d = w_enc.shape
        w_dec = np.asarray(w_dec, dtype=np.float32)
        b_enc = np.asarray(b_enc, dtype=np.float32).reshape(-1)
        b_pre = np.asarray(b_pre, dtype=np.float32).reshape(-1)
        if w_dec.shape != (d, n) or b_enc.shape != (n,) or b_pre.shape != (d,):
            raise SAEError(f"inconsistent SAE shapes: W_enc {tuple(w_enc.shape)}, W_dec {w_dec.shape}, "
                           f"b_enc {b_enc.shape}, b_pre {b_pre.shape}")
        if not 0 < int(k) <= n or not scale > 0:
            raise SAEError(f"bad SAE parameters k={k}, scale={scale}")
        self.dim, self.n_latents, self.k = int(d), int(n), int(k)
        self.scale, self.input_norm, self.sae_name = float(scale), float(input_norm), sae_name
        self._w_enc = w_enc
        self.b_enc, self.b_pre = b_enc, b_pre
        rows = np.ascontiguousarray(w_dec.T)  # [n, d]: a direction is one contiguous row
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        self._rows = rows / np.maximum(norms, 1e-12)
        self._rows.setflags(write=False)
        # pre(q) = (r/‖q‖) / s · W_enc q + (b_enc − W_enc b_pre / s)
        self._offset = b_enc - self.project(b_pre) / self.scale
        self._labels = labels

    @classmethod
    def from_sae(cls, sae, sae_name: str = "sae") -> "SAEDirections":
        """Wrap a memetui.sae.model.TopKSAE (reads its weights once; keeps no autograd graph)."""
        def array(tensor) -> np.ndarray:
            return tensor.detach().float().cpu().numpy()

        return cls(array(sae.W_enc), array(sae.b_enc), array(sae.b_pre), array(sae.W_dec).T, k=sae.k,
                   scale=sae.scale, input_norm=sae.input_norm, labels=sae.labels, sae_name=sae_name)

    def __len__(self) -> int:
        return self.n_latents

    def vector(self, id: int) -> np.ndarray:  # noqa: A002
        """W_dec[:, id] ([d] float32, unit norm)."""
        return self._rows[_check_id("sae", id, self.n_latents)]

    @property
    def decoder_rows(self) -> np.ndarray:
        """[n, d] unit decoder columns as rows (read-only)."""
        return self._rows

    def label(self, id: int) -> str:  # noqa: A002
        """The stored label of latent `id` (best CLIP vocabulary words), else 'feature id'."""
        id = _check_id("sae", id, self.n_latents)  # noqa: A001
        labels = self._labels
        text = None
        if isinstance(labels, Mapping):
            text = labels.get(id, labels.get(str(id)))
        elif labels is not None and id < len(labels):
            text = labels[id]
        if isinstance(text, (list, tuple)):
            text = ", ".join(map(str, text))
        return safe_label(text) if text else f"feature {id}"

    # -- encoding ------------------------------------------------------------------------------
    def project(self, e: np.ndarray) -> np.ndarray:
        """W_enc e: [d] -> [n] float32, or [m, d] -> [m, n] (the linear part of the encoder)."""
        import torch

        with torch.inference_mode():
            e = np.asarray(e, dtype=np.float32)
            e = torch.from_numpy(e if e.flags.writeable and e.flags.c_contiguous else e.copy())
            out = self._w_enc @ e if e.ndim == 1 else e @ self._w_enc.T
            return out.numpy()

    def encode_projected(self, projected: np.ndarray, norm: float) -> SAECode:
        """Top-k code of q/‖q‖·r from its projection W_enc q ([n]) and ‖q‖."""
        if not norm > 0:
            return SAECode(np.zeros(0, np.float32), np.zeros(0, np.int64))
        pre = projected * np.float32(self.input_norm / (norm * self.scale)) + self._offset
        return self._topk(pre)

    def encode(self, x: np.ndarray) -> SAECode:
        """Top-k code of input vectors x ([d] or [m, d], at the training norm r; not rescaled).

        z = TopK_k(ReLU(W_enc (x − b_pre)/s + b_enc)); zero activations are dropped for [d] input.
        """
        x = np.asarray(x, dtype=np.float32)
        pre = self.project(x) / np.float32(self.scale) + self._offset
        return self._topk(pre)

    def encode_query(self, q: np.ndarray) -> SAECode:
        """Top-k code of a query vector q of any norm: encode(q/‖q‖ · r)."""
        _, norm = _unit(q)
        return self.encode_projected(self.project(np.asarray(q, np.float32).reshape(-1)), norm)

    def _topk(self, pre: np.ndarray) -> SAECode:
        k = self.k
        if pre.ndim == 1:
            top = np.argpartition(pre, -k)[-k:]
            top = top[np.argsort(-pre[top], kind="stable")]
            acts = pre[top]
            keep = acts > 0
            return SAECode(acts[keep].astype(np.float32), top[keep].astype(np.int64))
        top = np.argpartition(pre, -k, axis=1)[:, -k:]
        vals = np.take_along_axis(pre, top, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        top, vals = np.take_along_axis(top, order, 1), np.take_along_axis(vals, order, 1)
        return SAECode(np.maximum(vals, 0).astype(np.float32), top.astype(np.int64))

    def dense(self, code: SAECode) -> np.ndarray:
        """Dense [n] (or [m, n]) activations from a code."""
        if code.acts.ndim == 1:
            out = np.zeros(self.n_latents, np.float32)
            out[code.indices] = code.acts
            return out
        out = np.zeros((code.acts.shape[0], self.n_latents), np.float32)
        np.put_along_axis(out, code.indices, code.acts, 1)
        return out

    def active(self, q: np.ndarray, n: int = 10) -> list[ActiveDirection]:
        """Top-n (≤ k) latents of encode(q/‖q‖·r) with their activation values."""
        return self.active_from_code(self.encode_query(q), n)

    def active_from_code(self, code: SAECode, n: int = 10) -> list[ActiveDirection]:
        """Named list of a code's strongest n latents."""
        return [ActiveDirection(int(j), self.label(int(j)), float(a))
                for a, j in zip(code.acts[:n], code.indices[:n])]


def load_sae_directions(store, name: str | Path | None = None) -> SAEDirections | None:
    """The SAE `name` (a name in INDEX/sae, or a .json/.safetensors path) of `store` as directions.

    name None: the index's first SAE, or None when it has none. Raises SAEError when the SAE is
    missing, corrupt, or does not fit the index (dimension, model).
    """
    from ..sae.model import load_for_index

    if name is None:
        names = store.sae_names()
        if not names:
            return None
        name = names[0]
    sae = load_for_index(name, store)
    return SAEDirections.from_sae(sae, sae_name=Path(name).name.removesuffix(".json").removesuffix(".safetensors"))


# -- PCA ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PCAResult:
    """Principal components of an index: rows of `components` are orthonormal."""

    mean: np.ndarray
    """[d] float32 mean of the live rows."""
    components: np.ndarray
    """[m, d] float32, orthonormal rows, by decreasing variance; sign: largest |entry| positive."""
    explained: np.ndarray
    """[m] float32 fraction of total variance per component."""


def compute_pca(embeddings: np.ndarray, rows: np.ndarray | None = None, max_components: int = 128,
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
    """Principal components of an index's rows; cached in INDEX/pca.npz."""

    name = "pca"

    def __init__(self, pca: PCAResult):
        self.pca = pca
        self.dim = int(pca.components.shape[1])
        pca.components.setflags(write=False)

    @classmethod
    def for_store(cls, store, max_components: int = 128) -> "PCADirections":
        """Load INDEX/pca.npz if it matches the index (count, update time, model), else compute it."""
        path = store.path / PCA_FILE
        key = np.array([PCA_FORMAT, store.count, store.manifest.updated, max_components], np.float64)
        try:
            with np.load(path, allow_pickle=False) as data:
                if np.array_equal(data["key"], key) and str(data["model"]) == store.model.sha256:
                    return cls(PCAResult(data["mean"], data["components"], data["explained"]))
        except (OSError, KeyError, ValueError):
            pass
        live = store.live_mask()
        pca = compute_pca(store.embeddings, None if live.all() else np.flatnonzero(live), max_components)
        try:
            from ..atomic import atomic_path

            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, key=key, model=np.array(store.model.sha256), mean=pca.mean,
                         components=pca.components, explained=pca.explained)
        except OSError as exc:  # a read-only (shipped) index: keep it in memory
            log.info("cannot cache %s: %s", path, exc)
        return cls(pca)

    def __len__(self) -> int:
        return int(self.pca.components.shape[0])

    def vector(self, id: int) -> np.ndarray:  # noqa: A002
        """Component `id` ([d] float32, unit norm)."""
        return self.pca.components[_check_id("pca", id, len(self))]

    def label(self, id: int) -> str:  # noqa: A002
        """'PC3 (4.1% var)'."""
        id = _check_id("pca", id, len(self))  # noqa: A001
        return f"PC{id + 1} ({self.pca.explained[id]:.1%} var)"

    def active(self, q: np.ndarray, n: int = 10) -> list[ActiveDirection]:
        """Components with the largest |(q/‖q‖ − μ)·v_j|, with the signed projection."""
        unit, norm = _unit(q)
        if norm == 0:
            return []
        proj = self.pca.components @ (unit - self.pca.mean)
        top = np.argsort(-np.abs(proj), kind="stable")[:n]
        return [ActiveDirection(int(j), self.label(int(j)), float(proj[j])) for j in top]


# -- random ------------------------------------------------------------------------------------
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
        from ..errors import QueryError

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

    def active(self, q: np.ndarray, n: int = 10) -> list[ActiveDirection]:
        """The current candidates (newest first) with their cosine to q."""
        unit, _ = _unit(q)
        return [ActiveDirection(j, self.label(j), float(self.vector(j) @ unit)) for j in self.candidates[:n]]
