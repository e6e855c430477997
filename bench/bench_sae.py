"""SAE training throughput and quality: memetui's trainer vs a plain dense top-k SAE (Gao et al. 2024).

Both train on the same synthetic CLIP-like data (a shared mean + a sparse dictionary, unit rows), with
the same d, n, k, batch, learning rate, initial b_pre/scale and number of steps, in one process.
The baseline is the paper's recipe written plainly: dense decoder matmul, full autograd, no AuxK,
torch.optim.Adam with default settings. Prints samples/s of each, the ratio, and validation FVU / dead.

    python bench/bench_sae.py --rows 200000          # ≈ 180k training rows, 2 epochs (350 steps of 1,024)
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from memetui.sae.model import TopKSAE
from memetui.sae.synthetic import sparse_dictionary_data
from memetui.sae.train import TrainConfig, evaluate, lr_at, open_training_data, train


class DenseTopKSAE(torch.nn.Module):
    """Plain top-k SAE: z = TopK(ReLU(W_enc x̃ + b_enc)) scattered dense, x̂ = z W_dec + b_dec."""

    def __init__(self, d: int, n: int, k: int, b_pre: torch.Tensor, scale: float, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.k, self.scale = k, scale
        self.W_dec = torch.nn.Parameter(F.normalize(torch.randn(n, d, generator=gen), dim=1))
        self.W_enc = torch.nn.Parameter(self.W_dec.detach().clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(n))
        self.b_dec = torch.nn.Parameter(torch.zeros(d))
        self.register_buffer("b_pre", b_pre.clone())

    def forward(self, x_tilde: torch.Tensor) -> torch.Tensor:
        pre = F.relu(F.linear(x_tilde, self.W_enc, self.b_enc))
        vals, idx = pre.topk(self.k, dim=1)
        z = torch.zeros_like(pre).scatter(1, idx, vals)
        return z @ self.W_dec + self.b_dec

    def to_topk_sae(self) -> TopKSAE:
        """Same weights in a TopKSAE, so both models are evaluated by the same code."""
        sae = TopKSAE(self.W_dec.shape[1], self.W_dec.shape[0], self.k, scale=self.scale)
        sae.load_state_dict({"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec,
                             "b_dec": self.b_dec, "b_pre": self.b_pre})
        return sae


def train_dense(data, cfg: TrainConfig, b_pre: torch.Tensor, scale: float, steps: int) -> tuple[TopKSAE, float]:
    """The paper's loop, plainly: returns (model as TopKSAE, samples/s)."""
    torch.manual_seed(cfg.seed)
    model = DenseTopKSAE(data.dim, cfg.n_latents, cfg.k, b_pre, scale, cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed)
    order, seconds = np.empty(0, np.int64), 0.0
    warmup = min(max(steps // 20, 1), 1000)
    for step in range(steps):
        if len(order) < cfg.batch_size:
            order = rng.permutation(data.train_rows)
        rows, order = order[:cfg.batch_size], order[cfg.batch_size:]
        t0 = time.perf_counter()
        x_tilde = (data.batch(rows) - b_pre) / scale
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, cfg.learning_rate, warmup, cfg.decay_fraction)
        loss = (model(x_tilde) - x_tilde).pow(2).sum() / (x_tilde - x_tilde.mean(0)).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        with torch.no_grad():
            g, w = model.W_dec.grad, model.W_dec
            g.sub_((g * w).sum(1, keepdim=True) * w)
        optimizer.step()
        with torch.no_grad():
            model.W_dec.div_(model.W_dec.norm(dim=1, keepdim=True))
        seconds += time.perf_counter() - t0
    return model.to_topk_sae(), steps * cfg.batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="synthetic rows (10 %% held out)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--atoms", type=int, default=4096, help="true dictionary size")
    parser.add_argument("--active", type=int, default=16, help="true atoms per sample")
    parser.add_argument("--families", type=int, default=0, help="group atoms around this many parents (0 = off)")
    parser.add_argument("--latents", type=int, default=16384)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--skip-dense", action="store_true", help="only run memetui's trainer")
    args = parser.parse_args()

    t0 = time.perf_counter()
    syn = sparse_dictionary_data(args.rows, args.dim, args.atoms, args.active, families=args.families, seed=0)
    data = open_training_data(syn.x)
    cos_mean = float(np.linalg.norm(syn.x.mean(0)))
    print(f"data: {args.rows} × {args.dim} (train {len(data.train_rows)}, val {len(data.val_rows)}), "
          f"{args.atoms} atoms, {args.active} active, ‖mean‖ {cos_mean:.2f}; made in {time.perf_counter() - t0:.1f}s; "
          f"torch threads {torch.get_num_threads()}")
    cfg = TrainConfig(n_latents=args.latents, k=args.k, batch_size=args.batch, epochs=args.epochs, lr=args.lr)
    ours = train(data, cfg)
    steps = ours.sae.meta["training"]["steps"]
    m = ours.metrics
    print(f"memetui : {ours.samples_per_s:8,.0f} samples/s  val FVU {m.fvu:.4f}  dead {m.dead_fraction:6.2%}  "
          f"cos {m.mean_cosine:.4f}  ({steps} steps, lr {cfg.learning_rate:.1e}, {ours.matmul} selection, "
          f"{'fused' if ours.fused_adam else 'foreach'} Adam)")
    if args.skip_dense:
        return
    dense, dense_rate = train_dense(data, cfg, ours.sae.b_pre.cpu(), ours.sae.scale, steps)
    d = evaluate(dense, data)
    print(f"dense   : {dense_rate:8,.0f} samples/s  val FVU {d.fvu:.4f}  dead {d.dead_fraction:6.2%}  "
          f"cos {d.mean_cosine:.4f}")
    print(f"ratio   : {ours.samples_per_s / dense_rate:.2f}× samples/s; FVU {m.fvu:.4f} vs {d.fvu:.4f} "
          f"({'equal or lower' if m.fvu <= d.fvu + 1e-4 else 'HIGHER'})")
    if not math.isfinite(m.fvu):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
