"""One optimiser step of a top-k SAE with hand-written sparse gradients, timed per stage.

    x̂ = W_decᵀ z + b_dec,  z = TopK_k(ReLU(W_enc x̃ + b_enc))           x̃ [B,d], z [B,n] k-sparse
    L = Σ‖x̂ − x̃‖² / Σ‖x̃ − x̄‖²  +  aux_weight · AuxK

Gradients, g = ∂L/∂x̂ = 2(x̂ − x̃)/V [B,d]:  ∂b_dec = Σ_b g;  ∂W_dec[j] += Σ_{z_bj>0} z_bj g_b;
∂z_bj = W_dec[j]·g_b (selected j only, 0 where ReLU clipped);  ∂W_enc[j] += Σ_b ∂z_bj x̃_b;
∂b_enc[j] += Σ_b ∂z_bj. No autograd graph: every gradient is one sparse kernel writing into the
parameter's persistent `.grad` (checked against dense autograd in tests/test_sae_model.py).

AuxK (Gao et al.): the top-k_aux latents among the dead reconstruct the residual e = x̃ − x̂ of the
first `aux_batch` samples as γ·ê with γ the least-squares gain (detached, ≥ 0); without γ, dead
latents' large activations overshoot e and the loss pushes them further below zero.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable, NamedTuple

import torch

from .kernels import (Workspace, code_pattern, decode, gather_dot, pre_activations, scatter_rows_, select_among,
                      top_k)
from .model import TopKSAE

STAGES = ("data", "encode", "select", "decode", "auxk", "backward", "optimiser", "dead")
"""Stages of a step, in order, as reported by the profile."""


class StepStats(NamedTuple):
    """Losses of one optimiser step (floats, already synchronised)."""

    loss: float
    fvu: float
    aux: float


class StageTimer:
    """Wall and CPU time per stage: `mark(stage)` charges the time since the previous mark to `stage`.

    CPU time is the process's (all its threads): on a machine shared with other jobs it measures the
    work of a step where wall time mostly measures the wait for a core.
    """

    def __init__(self, sync: Callable[[], None] | None = None, clock: Callable[[], float] = time.perf_counter,
                 cpu_clock: Callable[[], float] = time.process_time):
        self.totals: dict[str, float] = defaultdict(float)
        self.cpu_totals: dict[str, float] = defaultdict(float)
        self.steps = 0
        self._sync, self._clock, self._cpu_clock = sync, clock, cpu_clock
        self._last, self._cpu_last = clock(), cpu_clock()

    def start(self) -> None:
        """Begin a step (time before it is charged to nothing)."""
        self._last, self._cpu_last = self._clock(), self._cpu_clock()

    def mark(self, stage: str) -> None:
        """Charge the time since the last mark to `stage`."""
        if self._sync is not None:
            self._sync()
        now, cpu = self._clock(), self._cpu_clock()
        self.totals[stage] += now - self._last
        self.cpu_totals[stage] += cpu - self._cpu_last
        self._last, self._cpu_last = now, cpu

    def ms_per_step(self, cpu: bool = False) -> dict[str, float]:
        """Mean milliseconds per step for each stage (STAGES order, then any others); `cpu`: CPU time."""
        totals, steps = self.cpu_totals if cpu else self.totals, max(self.steps, 1)
        names = [s for s in STAGES if s in totals] + [s for s in totals if s not in STAGES]
        return {name: 1000 * totals[name] / steps for name in names}


class _NoTimer:
    def mark(self, stage: str) -> None:
        pass


def _grads(sae: TopKSAE) -> dict[str, torch.Tensor]:
    """Persistent gradient buffers of the trainable parameters: b_enc's zeroed, the others overwritten
    by the step (so no zeroing pass over the two [n, d] matrices)."""
    out = {}
    for name, p in (("W_enc", sae.W_enc), ("b_enc", sae.b_enc), ("W_dec", sae.W_dec), ("b_dec", sae.b_dec)):
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif name == "b_enc":
            p.grad.zero_()
        out[name] = p.grad
    return out


def _code_grads(sae: TopKSAE, grads, x: torch.Tensor, acts: torch.Tensor, indices: torch.Tensor,
                g: torch.Tensor, accumulate: bool = True) -> None:
    """Add the gradients of a code (acts/indices [A,k]) that decodes to x̂ with ∂L/∂x̂ = g [A,d]
    (`accumulate` False: the weight gradients are set, not added to)."""
    pattern = code_pattern(indices, sae.n_latents) if g.device.type == "cpu" else None
    scatter_rows_(grads["W_dec"], indices, acts, g, pattern, accumulate)
    grad_acts = gather_dot(indices, sae.W_dec.detach(), g) * (acts > 0)
    scatter_rows_(grads["W_enc"], indices, grad_acts, x, pattern, accumulate)
    grads["b_enc"].index_add_(0, indices.reshape(-1), grad_acts.reshape(-1))


class Gradients(NamedTuple):
    """What `loss_and_grads` leaves besides the parameters' `.grad`: the losses and the code used."""

    stats: StepStats
    acts: torch.Tensor
    """[B, k] activations of the selected latents."""
    indices: torch.Tensor
    """[B, k] selected latents."""


def loss_and_grads(sae: TopKSAE, x_tilde: torch.Tensor, dead: torch.Tensor | None = None, aux_weight: float = 0.0,
                   k_aux: int = 0, aux_batch: int = 256, matmul_dtype: torch.dtype | None = None,
                   workspace: Workspace | None = None, timer: StageTimer | None = None) -> Gradients:
    """Forward pass and sparse gradients of L (module docstring) into the parameters' `.grad`.

    `dead` [n] bool marks the latents AuxK may use (None or aux_weight 0: no AuxK).
    """
    timer = timer or _NoTimer()
    W_enc, b_enc, W_dec, b_dec = (p.detach() for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    x = x_tilde.detach()
    pre = pre_activations(x, W_enc, b_enc, matmul_dtype, workspace)
    timer.mark("encode")
    sel = top_k(pre, sae.k)
    timer.mark("select")
    x_hat = decode(sel.acts, sel.indices, W_dec) + b_dec
    residual = x_hat - x
    variance = (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    fvu = residual.pow(2).sum() / variance
    timer.mark("decode")
    rows = min(aux_batch, x.shape[0])
    e = -residual[:rows]  # x̃ − x̂ on the AuxK rows (a copy: residual is scaled in place below)
    grads = _grads(sae)
    g = residual.mul_(2.0 / variance)
    grads["b_dec"].copy_(g.sum(0))
    _code_grads(sae, grads, x, sel.acts, sel.indices, g, accumulate=False)
    timer.mark("backward")
    aux = torch.zeros((), device=x.device)
    if dead is not None and aux_weight > 0 and k_aux > 0:
        aux_acts, aux_idx = select_among(pre, dead.nonzero().squeeze(1), k_aux, rows)
        if aux_idx.shape[1] > 0:
            e_hat = decode(aux_acts, aux_idx, W_dec)
            gain = ((e_hat * e).sum() / e_hat.pow(2).sum().clamp_min(1e-12)).clamp_min(0.0)
            aux_var = (e - e.mean(0)).pow(2).sum().clamp_min(1e-12)
            diff = gain * e_hat - e
            aux = diff.pow(2).sum() / aux_var
            _code_grads(sae, grads, x[:rows], aux_acts, aux_idx, diff.mul_(aux_weight * 2.0 * gain / aux_var))
    timer.mark("auxk")
    stats = StepStats(float(fvu + aux_weight * aux), float(fvu), float(aux))
    return Gradients(stats, sel.acts, sel.indices)


@torch.no_grad()
def update_(sae: TopKSAE, optimizer: torch.optim.Optimizer, grad_clip: float) -> None:
    """Clip, remove the decoder gradient's parallel part, step, renormalise the decoder rows."""
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(sae.parameters(), grad_clip, foreach=True)
    sae.remove_parallel_grad_()
    optimizer.step()
    sae.unit_norm_decoder_()


def train_step(sae: TopKSAE, optimizer: torch.optim.Optimizer, x_tilde: torch.Tensor, dead: torch.Tensor | None,
               aux_weight: float, k_aux: int, aux_batch: int, grad_clip: float,
               matmul_dtype: torch.dtype | None = None, workspace: Workspace | None = None,
               timer: StageTimer | None = None) -> Gradients:
    """One optimiser step on a normalised batch x̃ [B, d] (`loss_and_grads` then `update_`)."""
    out = loss_and_grads(sae, x_tilde, dead, aux_weight, k_aux, aux_batch, matmul_dtype, workspace, timer)
    update_(sae, optimizer, grad_clip)
    (timer or _NoTimer()).mark("optimiser")
    return out


def lr_at(step: int, total: int, base: float, warmup: int, decay_fraction: float) -> float:
    """Linear warm-up over `warmup` steps, constant, then linear decay to 0 over the last fraction."""
    if step < warmup:
        return base * (step + 1) / warmup
    decay_start = int(total * (1 - decay_fraction))
    if decay_fraction > 0 and step >= decay_start:
        return base * max(total - step, 1) / max(total - decay_start, 1)
    return base


class Optimizer(NamedTuple):
    """An Adam optimiser and whether it is the fused implementation."""

    optimizer: torch.optim.Optimizer
    fused: bool


def make_optimizer(params, lr: float, fused: bool | None = None) -> Optimizer:
    """Adam (betas 0.9/0.999, eps 6.25e-10), fused where supported."""
    params = list(params)
    if fused is not False:
        try:
            return Optimizer(torch.optim.Adam(params, lr=lr, eps=6.25e-10, fused=True), True)
        except (RuntimeError, TypeError):
            if fused:
                raise
    return Optimizer(torch.optim.Adam(params, lr=lr, eps=6.25e-10, foreach=True), False)


def choose_matmul_dtype(matmul: str, device: torch.device) -> torch.dtype | None:
    """None (fp32) or torch.bfloat16 for the encoder's selection matmul ('auto': bf16 where fast)."""
    if matmul == "bf16":
        return torch.bfloat16
    if matmul == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and _cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def _cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively (AVX512-BF16 or AMX); else bf16 is emulated and slow."""
    try:
        flags = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
