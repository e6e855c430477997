"""The plain optimised top-k SAE the trainer is measured against (issue 16's reference row).

Gao et al.'s recipe written plainly in ~60 lines: dense fp32 encoder matmul, top-k, the selected
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


def train_reference(data, n: int, k: int, batch: int, steps: int, lr: float, b_pre: torch.Tensor, scale: float,
                    seed: int = 0) -> ReferenceResult:
    """Train the plain SAE for `steps` batches of `data.train_rows`; time only the steps (data included)."""
    torch.manual_seed(seed)
    d = data.dim
    gen = torch.Generator().manual_seed(seed)
    W_dec = torch.nn.Parameter(F.normalize(torch.randn(n, d, generator=gen), dim=1))
    W_enc = torch.nn.Parameter(W_dec.detach().clone())
    b_enc, b_dec = torch.nn.Parameter(torch.zeros(n)), torch.nn.Parameter(torch.zeros(d))
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(params, lr=lr, fused=True)
    rng = np.random.default_rng(seed)
    order, seconds = np.empty(0, np.int64), 0.0
    for _ in range(steps):
        if len(order) < batch:
            order = rng.permutation(data.train_rows)
        rows, order = order[:batch], order[batch:]
        t0 = time.perf_counter()
        x = (data.batch(rows) - b_pre) / scale
        with torch.no_grad():
            idx = F.linear(x, W_enc, b_enc).topk(k, dim=1, sorted=False).indices
        acts = F.relu(torch.bmm(F.embedding(idx, W_enc), x.unsqueeze(2)).squeeze(2) + b_enc[idx])
        x_hat = F.embedding_bag(idx, W_dec, per_sample_weights=acts, mode="sum") + b_dec
        loss = (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            W_dec.grad.sub_((W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec)
        opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))
        seconds += time.perf_counter() - t0
    sae = TopKSAE(d, n, k, scale=scale)
    sae.load_state_dict({"W_enc": W_enc.detach(), "b_enc": b_enc.detach(), "W_dec": W_dec.detach(),
                         "b_dec": b_dec.detach(), "b_pre": b_pre})
    return ReferenceResult(sae, steps * batch / max(seconds, 1e-9), lr)
