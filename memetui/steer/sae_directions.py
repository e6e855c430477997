"""SAE decoder columns as steering directions, with a fast single-query top-k encoder (no autograd).

v_j = W_dec[:, j]; active = top entries of ``encode(q/‖q‖ · r)`` where r is the data norm the SAE
was trained at (1 for unit CLIP rows), i.e. with x̃ = (x − b_pre)/s::

    z = TopK_k(ReLU(W_enc x̃ + b_enc))

Because the pre-activation is affine in q, ``W_enc q`` is linear in the query's terms: the
Session caches ``W_enc eᵢ`` per term (one [n]-vector each) and a step costs one axpy over n
latents instead of an n×d matvec (`encode_projected`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import SAEError
from .provider import ActiveDirection, check_direction_id, unit_and_norm


class SAECode(NamedTuple):
    """Top-k SAE code of one or more vectors, strongest first."""

    acts: np.ndarray
    """[..., k] float32 activations (≥ 0)."""
    indices: np.ndarray
    """[..., k] int64 latent ids."""



UNIT_TOLERANCE = 1e-5
"""Decoder rows whose norm is within this of 1 are used as stored (training keeps them unit)."""


def unit_rows(rows: np.ndarray, tolerance: float = UNIT_TOLERANCE) -> np.ndarray:
    """`rows` [n, d] float32 with every row of unit norm: the array itself when each row's norm is
    within `tolerance` of 1 (one pass, no temporary [n, d] array), else a copy with the others rescaled."""
    squared = np.einsum("ij,ij->i", rows, rows)
    off = np.flatnonzero(~(np.abs(squared - 1.0) <= 2 * tolerance))  # NaN counts as off
    if off.size == 0:
        return rows
    rows = rows.copy()
    rows[off] /= np.sqrt(np.maximum(squared[off], 1e-24))[:, None]
    return rows


class SAEDirections:
    """Decoder columns of a top-k SAE as directions; fast single-query encoder (no autograd)."""

    name = "sae"

    def __init__(self, w_enc, b_enc, b_pre, w_dec, k: int, scale: float = 1.0, input_norm: float = 1.0,
                 labels: Mapping[int, str] | Sequence[str] | None = None, sae_name: str = "sae",
                 exemplar_labels: Sequence[Sequence[str]] | None = None):
        """Shapes: w_enc [n, d], b_enc [n], b_pre [d], w_dec [d, n]; x̃ = (x − b_pre)/scale.
        `labels`: text-tower labels; `exemplar_labels`: words of each latent's exemplars (both optional)."""
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
        self._rows = unit_rows(np.ascontiguousarray(w_dec.T))  # [n, d]: a direction is one contiguous row
        self._rows.setflags(write=False)
        # pre(q) = (r/‖q‖) / s · W_enc q + (b_enc − W_enc b_pre / s)
        self._offset = b_enc - self.project(b_pre) / self.scale
        self._labels = labels
        self._exemplar_labels = exemplar_labels if isinstance(exemplar_labels, (list, tuple)) else None

    @classmethod
    def from_sae(cls, sae, sae_name: str = "sae") -> "SAEDirections":
        """Wrap a memetui.sae.model.TopKSAE (reads its weights once; keeps no autograd graph)."""
        def array(tensor) -> np.ndarray:
            return tensor.detach().float().cpu().numpy()

        return cls(array(sae.W_enc), array(sae.b_enc), array(sae.b_pre), array(sae.W_dec).T, k=sae.k,
                   scale=sae.scale, input_norm=sae.input_norm, labels=sae.labels, sae_name=sae_name,
                   exemplar_labels=sae.meta.get("exemplar_labels"))

    def __len__(self) -> int:
        return self.n_latents

    def vector(self, id: int) -> np.ndarray:  # noqa: A002
        """W_dec[:, id] ([d] float32, unit norm)."""
        return self._rows[check_direction_id("sae", id, self.n_latents)]

    @property
    def decoder_rows(self) -> np.ndarray:
        """[n, d] unit decoder columns as rows (read-only)."""
        return self._rows

    def label(self, id: int) -> str:  # noqa: A002
        """Both stored labels of latent `id` (raw text), e.g. 'yellow, emoji, face · exemplars: banana, moon';
        'feature id' when it has none."""
        id = check_direction_id("sae", id, self.n_latents)  # noqa: A001
        text, words = self.text_label(id), self.exemplar_label(id)
        if words:
            return f"{text} · exemplars: {words}" if text else f"exemplars: {words}"
        return text or f"feature {id}"

    def text_label(self, id: int) -> str:  # noqa: A002
        """The text-tower label of latent `id` (best CLIP vocabulary words, comma-separated), '' when none."""
        labels = self._labels
        text = None
        if isinstance(labels, Mapping):
            text = labels.get(id, labels.get(str(id)))
        elif labels is not None and 0 <= id < len(labels):
            text = labels[id]
        if isinstance(text, (list, tuple)):
            text = ", ".join(map(str, text))
        return str(text) if text else ""

    def exemplar_label(self, id: int) -> str:  # noqa: A002
        """The exemplar words of latent `id` (comma-separated), '' when none."""
        found = self._exemplar_labels[id] if self._exemplar_labels is not None and 0 <= id < len(self._exemplar_labels) else None
        if isinstance(found, (list, tuple)):
            return ", ".join(map(str, found))
        return str(found) if found else ""

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
        return self._topk(self.pre_activations(projected, norm))

    def pre_activations(self, projected: np.ndarray, norm: float) -> np.ndarray:
        """W_enc x̃ + b_enc for x = q/‖q‖·r, from W_enc q ([n]) and ‖q‖ > 0: [n] float32, before ReLU/top-k."""
        return projected * np.float32(self.input_norm / (norm * self.scale)) + self._offset

    def encode(self, x: np.ndarray) -> SAECode:
        """Top-k code of input vectors x ([d] or [m, d], at the training norm r; not rescaled).

        z = TopK_k(ReLU(W_enc (x − b_pre)/s + b_enc)); zero activations are dropped for [d] input.
        """
        x = np.asarray(x, dtype=np.float32)
        pre = self.project(x) / np.float32(self.scale) + self._offset
        return self._topk(pre)

    def encode_query(self, q: np.ndarray) -> SAECode:
        """Top-k code of a query vector q of any norm: encode(q/‖q‖ · r)."""
        _, norm = unit_and_norm(q)
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
