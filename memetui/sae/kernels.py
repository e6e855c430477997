"""Sparse kernels for top-k SAEs: only the k selected latents per sample are touched after selection.

Shapes: B samples, d input dims, n latents, k active latents per sample. Each fast path has a plain
reference beside it, and the tests check one against the other with `torch.testing.assert_close`.

- `select_topk(x̃, W_enc, b_enc, k)`: pre = x̃ W_encᵀ + b_enc ([B,d] -> [B,n], the one dense matmul:
  the floor of the step), then TopK_k and ReLU -> Selection(acts [B,k], indices [B,k], pre [B,n]).
  The matmul may run in bf16 (AVX512-BF16 / tensor cores: ≈5× fp32 on the bench CPU); outputs then
  carry bf16 rounding (relative 2⁻⁹), far below any FVU we can reach.
- `scatter_rows_(out, indices, values, rows)`: out[j] += Σ_{b,s: indices[b,s]=j} values[b,s]·rows[b]
  ([n,d] += [B,k],[B,k],[B,d]); the weight gradient of encoder and decoder. Reference: `index_add_`;
  CPU: one CSR [n,B] × [B,d] `addmm` into `out` (no [B·k,d] buffer, no fresh pages).
- `gather_dot(indices, weight, rows)`: out[b,s] = weight[indices[b,s]] · rows[b] ([B,k],[n,d],[B,d] ->
  [B,k]). Reference: embedding + bmm; CPU: `sparse.sampled_addmm` on the code's pattern.
- `decode(acts, indices, weight)`: Σ_s acts[b,s]·weight[indices[b,s]] via `F.embedding_bag(mode="sum")`.
"""

from __future__ import annotations

import logging
import warnings
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


class Selection(NamedTuple):
    """Top-k code of a batch and the dense pre-activations it came from."""

    acts: torch.Tensor
    """[B, k] float32 activations, ≥ 0."""
    indices: torch.Tensor
    """[B, k] int64 latent ids."""
    pre: torch.Tensor
    """[B, n] pre-activations (matmul dtype; a workspace buffer when one is given)."""


class Workspace:
    """Reusable buffers for the per-step dense tensors (fresh 30 MB buffers cost page faults on CPU)."""

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
        """An uninitialised buffer of this shape/dtype, reused across calls with the same name."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != torch.Size(shape) or buf.dtype != dtype or buf.device != torch.device(device):
            buf = self._buffers[name] = torch.empty(shape, dtype=dtype, device=device)
        return buf


@torch.no_grad()
def pre_activations(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    matmul_dtype: torch.dtype | None = None, workspace: Workspace | None = None) -> torch.Tensor:
    """x̃ W_encᵀ + b_enc ([B,d] -> [B,n]) in `matmul_dtype` (None = x's), into a workspace buffer if given."""
    dtype = matmul_dtype or x.dtype
    if workspace is None:
        return F.linear(x.to(dtype), weight.to(dtype), bias.to(dtype))
    w = weight
    if weight.dtype != dtype:
        w = workspace.get("w_enc", tuple(weight.shape), dtype, weight.device)
        w.copy_(weight)
    pre = workspace.get("pre", (x.shape[0], weight.shape[0]), dtype, x.device)
    return torch.addmm(bias.to(dtype), x.to(dtype), w.T, out=pre)


@torch.no_grad()
def top_k(pre: torch.Tensor, k: int) -> Selection:
    """TopK_k(ReLU(pre)) of pre-activations [B,n] -> Selection (acts in float32)."""
    values, indices = block_top_k(pre, k) if pre.device.type == "cpu" else pre.topk(k, dim=1, sorted=False)
    return Selection(values.float().relu_(), indices, pre)


def block_top_k(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest of each row of pre [B,n] (values, indices; unsorted) via block maxima; same values as topk.

    The n columns are cut into w = n/s strided blocks {j, j+w, …}. Every top-k element lies in one of the
    k blocks with the largest maxima (else those k maxima would be k larger elements), so a top-k of the
    w maxima and one of those blocks' s·k members replace the top-k over all n: torch's CPU top-k costs
    ≈2.5 ns per element and a block maximum is one vectorised pass (n 2,048, k 16: 1.57 → 1.29 ms per
    256 rows; n 16,384, k 32: 35 → 20 ms per 1,024 rows).
    """
    B, n = pre.shape
    s = 16 if n >= 1024 * k else 8
    if n % s or n // s < 2 * k:
        return pre.topk(k, dim=1, sorted=False)
    w = n // s
    blocks = pre.reshape(B, s, w)
    chosen = blocks.amax(1).topk(k, dim=1, sorted=False).indices  # [B, k] blocks
    members = blocks.gather(2, chosen.unsqueeze(1).expand(B, s, k)).reshape(B, s * k)
    values, local = members.topk(k, dim=1, sorted=False)
    return values, chosen.gather(1, local % k) + torch.div(local, k, rounding_mode="floor") * w


def select_topk(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int,
                matmul_dtype: torch.dtype | None = None, workspace: Workspace | None = None) -> Selection:
    """acts, indices = TopK_k(ReLU(x̃ W_encᵀ + b_enc)) with the matmul in `matmul_dtype` (None = x's)."""
    return top_k(pre_activations(x, weight, bias, matmul_dtype, workspace), k)


@torch.no_grad()
def select_among(pre: torch.Tensor, candidates: torch.Tensor, k: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of pre[:rows] restricted to the latent ids `candidates` [m] -> (acts [rows,k'], indices)."""
    k = min(k, candidates.numel())
    if k == 0:
        return pre.new_zeros(rows, 0, dtype=torch.float32), candidates.new_zeros(rows, 0)
    values, local = pre[:rows].index_select(1, candidates).topk(k, dim=1, sorted=False)
    return values.float().relu_(), candidates[local]


def scatter_rows_reference(indices: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """Σ values[b,s]·rows[b] into out[indices[b,s]] with `index_add_` ([B,k],[B,k],[B,d] -> [n,d])."""
    B, k = indices.shape
    out = rows.new_zeros(n, rows.shape[1])
    contrib = (values.unsqueeze(2) * rows.unsqueeze(1)).reshape(B * k, -1)
    return out.index_add_(0, indices.reshape(-1), contrib)


class CodePattern(NamedTuple):
    """Where a code's non-zeros go as a CSR [n, B] pattern: shared by every scatter of one step's code."""

    crow: torch.Tensor
    """[n + 1] row pointers (latent j's samples are cols[crow[j]:crow[j+1]])."""
    cols: torch.Tensor
    """[B·k] sample of each non-zero, grouped by latent."""
    order: torch.Tensor
    """[B·k] position in the flattened code of each non-zero, grouped by latent."""
    shape: tuple[int, int]


def code_pattern(indices: torch.Tensor, n: int) -> CodePattern:
    """The CSR pattern of a code's latent ids [B, k] over n latents (one sort, reused by every scatter)."""
    B, k = indices.shape
    flat = indices.reshape(-1)
    if flat.device.type == "cpu":  # numpy's single-threaded sort: torch's parallel one stalls on a busy CPU
        keys = flat.numpy()
        if n <= 1 << 16:  # numpy radix-sorts 16-bit keys: 0.11 vs 2.4 ms for 32,768 ids (timsort on int64)
            keys = keys.astype(np.uint16)
        order = torch.from_numpy(np.argsort(keys, kind="stable"))
    else:
        order = flat.argsort(stable=True)
    crow = torch.zeros(n + 1, dtype=torch.int64, device=indices.device)
    crow[1:] = torch.bincount(flat, minlength=n).cumsum(0)
    return CodePattern(crow, torch.div(order, k, rounding_mode="floor"), order, (n, B))


def scatter_rows_(out: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, rows: torch.Tensor,
                  pattern: CodePattern | None = None, accumulate: bool = True) -> torch.Tensor:
    """out += scatter of values[b,s]·rows[b] into rows indices[b,s] of out ([n,d]); returns out.

    `accumulate` False: out = the scatter (out's old values, even NaN, are not read: no zeroing pass).
    On CPU it is one CSR [n,B] × [B,d] `addmm`; pass the step's `code_pattern` to skip its sort.
    """
    if indices.numel() == 0:
        return out if accumulate else out.zero_()
    if out.device.type != "cpu":  # CUDA/MPS: index_add_ is atomic-add based and fast there
        scattered = scatter_rows_reference(indices, values, rows, out.shape[0])
        return out.add_(scattered) if accumulate else out.copy_(scattered)
    pattern = pattern or code_pattern(indices, out.shape[0])
    with warnings.catch_warnings():  # "CSR support is in beta": the ops used here are tested below
        warnings.simplefilter("ignore")
        csr = torch.sparse_csr_tensor(pattern.crow, pattern.cols, values.to(rows.dtype).reshape(-1)[pattern.order],
                                      pattern.shape, check_invariants=False)
        return torch.addmm(out, csr, rows, beta=1.0 if accumulate else 0.0, out=out)


def scatter_rows(indices: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """New [n,d] tensor: the scatter of `scatter_rows_` into zeros."""
    return scatter_rows_(rows.new_zeros(n, rows.shape[1]), indices, values, rows)


def gather_dot_reference(indices: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """out[b,s] = weight[indices[b,s]] · rows[b] via embedding + bmm ([B,k],[n,d],[B,d] -> [B,k])."""
    return torch.bmm(F.embedding(indices, weight), rows.unsqueeze(2)).squeeze(2)


def gather_dot(indices: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Same as `gather_dot_reference`; on CPU a sampled dense-dense product on the code's pattern."""
    B, k = indices.shape
    if weight.device.type != "cpu" or k == 0:
        return gather_dot_reference(indices, weight, rows)
    crow = torch.arange(0, B * k + 1, k, device=indices.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pattern = torch.sparse_csr_tensor(crow, indices.reshape(-1), rows.new_zeros(B * k), (B, weight.shape[0]),
                                          check_invariants=False)
        out = torch.sparse.sampled_addmm(pattern, rows, weight.T, beta=0.0)
    return out.values().reshape(B, k)


def decode(acts: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ_s acts[b,s] · weight[indices[b,s]] with `F.embedding_bag` ([B,k],[B,k],[n,d] -> [B,d])."""
    return F.embedding_bag(indices, weight, per_sample_weights=acts.to(weight.dtype), mode="sum")


decode_reference = decode
"""The decoder's reference path is the fast path itself: `embedding_bag` (≈2 ms vs ≈118 ms dense)."""


def topk_encode(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int,
                matmul_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(acts [B,k], indices [B,k]) of x̃ [B,d]; no gradients (training computes its own, see step.py)."""
    sel = select_topk(x, weight, bias, k, matmul_dtype)
    return sel.acts, sel.indices
