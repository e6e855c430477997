"""The plain optimised top-k SAE the trainer is measured against (issue 16's reference row).

Gao et al.'s recipe written plainly: dense fp32 encoder matmul, top-k, the selected
activations recomputed with autograd (so the encoder gets a sparse backward), an `embedding_bag`
decoder, fused Adam at a constant learning rate, unit-norm decoder rows with the gradient's parallel
part removed. No AuxK, no schedule, no tricks. Same b_pre/scale as ours so both see the same x̃.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from memetui.sae.model import TopKSAE


class ReferenceResult(NamedTuple):
    """The trained reference as a TopKSAE (evaluated by the same code as ours) and its speed."""

    sae: TopKSAE
    samples_per_s: float
    lr: float
    cpu_samples_per_s: float = 0.0
    """Samples per second of the process's CPU time."""


class Reference:
    """The plain SAE in training, one step at a time (so a bench can interleave it with ours)."""

    def __init__(self, data, n: int, k: int, batch: int, lr: float, b_pre: torch.Tensor, scale: float, seed: int = 0):
        torch.manual_seed(seed)
        self.data, self.n, self.k, self.batch, self.lr, self.b_pre, self.scale = data, n, k, batch, lr, b_pre, scale
        gen = torch.Generator().manual_seed(seed)
        self.W_dec = torch.nn.Parameter(F.normalize(torch.randn(n, data.dim, generator=gen), dim=1))
        self.W_enc = torch.nn.Parameter(self.W_dec.detach().clone())
        self.b_enc, self.b_dec = torch.nn.Parameter(torch.zeros(n)), torch.nn.Parameter(torch.zeros(data.dim))
        self.opt = torch.optim.Adam([self.W_enc, self.b_enc, self.W_dec, self.b_dec], lr=lr, fused=True)
        self.rng = np.random.default_rng(seed)
        self.order, self.seconds, self.cpu_seconds, self.steps = np.empty(0, np.int64), 0.0, 0.0, 0

    def step(self) -> None:
        """One optimiser step on the next batch; only the step (data included) is timed."""
        if len(self.order) < self.batch:
            self.order = self.rng.permutation(self.data.train_rows)
        rows, self.order = self.order[:self.batch], self.order[self.batch:]
        W_enc, b_enc, W_dec, b_dec = self.W_enc, self.b_enc, self.W_dec, self.b_dec
        t0, c0 = time.perf_counter(), time.process_time()
        x = (self.data.batch(rows) - self.b_pre) / self.scale
        with torch.no_grad():
            idx = F.linear(x, W_enc, b_enc).topk(self.k, dim=1, sorted=False).indices
        acts = F.relu(torch.bmm(F.embedding(idx, W_enc), x.unsqueeze(2)).squeeze(2) + b_enc[idx])
        x_hat = F.embedding_bag(idx, W_dec, per_sample_weights=acts, mode="sum") + b_dec
        loss = (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            W_dec.grad.sub_((W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec)
        self.opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.process_time() - c0
        self.steps += 1

    def result(self) -> ReferenceResult:
        """The trained reference as a TopKSAE and its samples/s over the steps so far."""
        sae = TopKSAE(self.data.dim, self.n, self.k, scale=self.scale)
        sae.load_state_dict({"W_enc": self.W_enc.detach(), "b_enc": self.b_enc.detach(), "W_dec": self.W_dec.detach(),
                             "b_dec": self.b_dec.detach(), "b_pre": self.b_pre})
        return ReferenceResult(sae, self.steps * self.batch / max(self.seconds, 1e-9), self.lr,
                               self.steps * self.batch / max(self.cpu_seconds, 1e-9))


def train_reference(data, n: int, k: int, batch: int, steps: int, lr: float, b_pre: torch.Tensor, scale: float,
                    seed: int = 0) -> ReferenceResult:
    """Train the plain SAE for `steps` batches of `data.train_rows`; time only the steps (data included)."""
    ref = Reference(data, n, k, batch, lr, b_pre, scale, seed)
    for _ in range(steps):
        ref.step()
    return ref.result()
