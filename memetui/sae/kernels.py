"""Sparse autograd kernels for top-k SAEs: only the k selected latents per sample get gradients.

Shapes: B samples, d input dims, n latents, k active latents per sample.

- `scatter_rows(indices, values, rows, n)`: out[j] = Σ_{b,s: indices[b,s]=j} values[b,s]·rows[b]
  ([B,k], [B,k], [B,d] -> [n,d]); the weight gradient of both the encoder and the decoder.
  Reference: `index_add_`; fast path: one COO sparse × dense matmul (≈2× faster on CPU).
- `TopKEncode`: (x̃ [B,d], W_enc [n,d], b_enc [n]) -> acts, indices [B,k] (+ AuxK top-k_aux among
  dead latents). Forward is one dense matmul (the floor); backward touches only the selected rows,
  after EleutherAI/sparsify's `FusedEncoder`.
- `SparseDecode`: (acts [B,k], indices [B,k], W_dec [n,d]) -> Σ_s acts[b,s]·W_dec[indices[b,s]]
  via `F.embedding_bag(..., mode="sum")`; backward with `scatter_rows` and a gather-dot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scatter_rows_reference(indices: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """Σ values[b,s]·rows[b] into out[indices[b,s]] with `index_add_` ([B,k],[B,k],[B,d] -> [n,d])."""
    B, k = indices.shape
    out = rows.new_zeros(n, rows.shape[1])
    contrib = (values.unsqueeze(2) * rows.unsqueeze(1)).reshape(B * k, -1)
    return out.index_add_(0, indices.reshape(-1), contrib)


def scatter_rows(indices: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """Same as `scatter_rows_reference`, as a sparse [n,B] × dense [B,d] matmul (no [B·k,d] buffer)."""
    if rows.device.type != "cpu":  # CUDA/MPS: index_add_ is atomic-add based and fast there
        return scatter_rows_reference(indices, values, rows, n)
    B, k = indices.shape
    cols = torch.arange(B, device=indices.device).repeat_interleave(k)
    coords = torch.stack([indices.reshape(-1), cols])
    sparse = torch.sparse_coo_tensor(coords, values.reshape(-1).to(rows.dtype), (n, B), check_invariants=False)
    return torch.sparse.mm(sparse, rows)


def gather_dot(indices: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """out[b,s] = weight[indices[b,s]] · rows[b]  ([B,k], [n,d], [B,d] -> [B,k])."""
    return torch.bmm(F.embedding(indices, weight), rows.unsqueeze(2)).squeeze(2)


class TopKEncode(torch.autograd.Function):
    """acts, indices = TopK_k(ReLU(x̃ W_encᵀ + b_enc)); optional AuxK codes among dead latents.

    forward(x̃ [B,d], W_enc [n,d], b_enc [n], k, dead [n] bool or None, k_aux, matmul_dtype)
      -> acts [B,k], indices [B,k], aux_acts [A,k'], aux_indices [A,k'] (k' = min(k_aux, #dead), 0
      without dead latents; A = the first `aux_rows` samples, which caps AuxK's cost). Pre-activations
      may be computed in `matmul_dtype` (bf16 on CUDA) for the selection; the returned activations
      are then re-computed exactly in fp32 for the k selected latents.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, k: int, dead, k_aux: int, matmul_dtype, aux_rows: int | None = None):  # noqa: D102
        if matmul_dtype is not None and matmul_dtype != x.dtype:
            pre = F.linear(x.to(matmul_dtype), weight.to(matmul_dtype), bias.to(matmul_dtype))
        else:
            pre = F.linear(x, weight, bias)
        _, indices = pre.topk(k, dim=1, sorted=False)
        if pre.dtype != x.dtype:  # exact fp32 values for the selected latents only
            acts = gather_dot(indices, weight, x) + bias[indices]
        else:
            acts = pre.gather(1, indices)
        acts = acts.relu_()
        aux_rows = x.shape[0] if aux_rows is None else min(aux_rows, x.shape[0])
        aux_acts = acts.new_zeros(aux_rows, 0)
        aux_indices = indices.new_zeros(aux_rows, 0)
        if dead is not None and k_aux > 0:
            dead_ids = dead.nonzero().squeeze(1)
            if dead_ids.numel() > 0:
                dead_pre = pre[:aux_rows].index_select(1, dead_ids)
                top, local = dead_pre.topk(min(k_aux, dead_ids.numel()), dim=1, sorted=False)
                aux_indices = dead_ids[local]
                aux_acts = top.to(x.dtype).relu_()  # selection precision is enough for the auxiliary loss
        ctx.save_for_backward(x, weight, indices, acts, aux_indices, aux_acts)
        ctx.mark_non_differentiable(indices, aux_indices)
        return acts, indices, aux_acts, aux_indices

    @staticmethod
    def backward(ctx, grad_acts, _grad_idx, grad_aux, _grad_aux_idx):  # noqa: D102
        x, weight, indices, acts, aux_indices, aux_acts = ctx.saved_tensors
        grad_acts = grad_acts * (acts > 0)  # ReLU
        if aux_indices.shape[1] > 0 and grad_aux is not None:  # AuxK rows are the first aux_rows samples
            pad = grad_acts.new_zeros(x.shape[0], aux_indices.shape[1])
            pad[:aux_indices.shape[0]] = grad_aux * (aux_acts > 0)
            pad_idx = indices.new_zeros(x.shape[0], aux_indices.shape[1])
            pad_idx[:aux_indices.shape[0]] = aux_indices
            indices = torch.cat([indices, pad_idx], dim=1)
            grad_acts = torch.cat([grad_acts, pad], dim=1)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(indices, weight, per_sample_weights=grad_acts, mode="sum")
        if ctx.needs_input_grad[1]:
            grad_w = scatter_rows(indices, grad_acts, x, weight.shape[0])
        if ctx.needs_input_grad[2]:
            grad_b = grad_acts.new_zeros(weight.shape[0]).index_add_(0, indices.reshape(-1), grad_acts.reshape(-1))
        return grad_x, grad_w, grad_b, None, None, None, None, None


class SparseDecode(torch.autograd.Function):
    """x̂ [B,d] = Σ_s acts[b,s] · W_dec[indices[b,s]]; backward touches only the selected rows."""

    @staticmethod
    def forward(ctx, acts, indices, weight):  # noqa: D102
        ctx.save_for_backward(acts, indices, weight)
        return F.embedding_bag(indices, weight, per_sample_weights=acts, mode="sum")

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        acts, indices, weight = ctx.saved_tensors
        grad_acts = gather_dot(indices, weight, grad_out) if ctx.needs_input_grad[0] else None
        grad_w = scatter_rows(indices, acts, grad_out, weight.shape[0]) if ctx.needs_input_grad[2] else None
        return grad_acts, None, grad_w


def decode_reference(acts: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Plain `F.embedding_bag` decode (the reference the fast path is tested against)."""
    return F.embedding_bag(indices, weight, per_sample_weights=acts, mode="sum")


def sparse_decode(acts: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Decode sparse codes with the custom-backward path when gradients are needed."""
    if torch.is_grad_enabled() and (acts.requires_grad or weight.requires_grad):
        return SparseDecode.apply(acts, indices, weight)
    return decode_reference(acts, indices, weight)


def topk_encode(x, weight, bias, k: int, dead=None, k_aux: int = 0, matmul_dtype=None, aux_rows: int | None = None):
    """Functional form of `TopKEncode` (see there)."""
    return TopKEncode.apply(x, weight, bias, k, dead, k_aux, matmul_dtype, aux_rows)
