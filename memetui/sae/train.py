"""Train a TopKSAE on index embeddings or any [N, d] array: the loop around `step.train_step`.

Data (`data.py`), the step and its gradients (`step.py`), dead-latent tracking (`dead.py`),
metrics (`metrics.py`), checkpoints (`checkpoint.py`) and the curve (`plot.py`) sit beside it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from .config import BASE_LR, TrainConfig  # noqa: F401  (re-exported)
from .data import EmbeddingData, open_training_data, row_hash, split_rows  # noqa: F401  (re-exported)
from .dead import DeadTracker
from .kernels import Workspace
from .metrics import EvalMetrics, ReconstructionStats, dead_fraction
from .model import TopKSAE
from .step import StageTimer, choose_matmul_dtype, lr_at, make_optimizer, train_step  # noqa: F401


class Plan(NamedTuple):
    """Step counts and windows derived from a TrainConfig and the data size."""

    total: int
    warmup: int
    eval_every: int
    k_aux: int
    aux_window: int


def make_plan(cfg: TrainConfig, n_train: int, d: int) -> Plan:
    """Steps (epochs × ⌊N_train / batch⌋, capped by max_steps), warm-up, eval cadence, AuxK size/window."""
    per_epoch = max(n_train // cfg.batch_size, 1)
    total = max(int(round(cfg.epochs * per_epoch)), 1)
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(max(total // 20, 1), 1000)
    k_aux = cfg.k_aux if cfg.k_aux is not None else min(d // 2, 512)
    aux_window = cfg.aux_window or 4 * cfg.batch_size
    return Plan(total, warmup, cfg.eval_every or max(total // 4, 1), k_aux, aux_window)


@dataclass
class Progress:
    """What the trainer reports after each step (for progress bars)."""

    step: int
    total_steps: int
    samples: int
    loss: float
    fvu: float
    aux: float
    dead_fraction: float
    lr: float
    samples_per_s: float
    val: EvalMetrics | None = None


@dataclass
class FinalMetrics:
    """Metrics of a finished SAE: full passes over the validation split, the training split and all rows."""

    val: EvalMetrics
    train: EvalMetrics
    dead_all_rows: float
    """Share of latents that fire on no row at all (train and validation)."""


@dataclass
class TrainResult:
    """A trained SAE with its metrics, training history and speed."""

    sae: TopKSAE
    metrics: EvalMetrics
    """Validation metrics (one full pass)."""
    history: list[dict] = field(default_factory=list)
    samples_per_s: float = 0.0
    seconds: float = 0.0
    fused_adam: bool = False
    matmul: str = "fp32"
    final: FinalMetrics | None = None
    dead_window: float = 0.0
    """Share of latents that did not fire in the last min(10M, one epoch, samples trained) training samples."""
    profile_ms: dict[str, float] = field(default_factory=dict)
    """Mean milliseconds per step for each stage."""


@torch.no_grad()
def evaluate(sae: TopKSAE, data: EmbeddingData, rows: np.ndarray | None = None, batch_size: int = 2048,
             matmul_dtype: torch.dtype | None = None) -> EvalMetrics:
    """FVU, L0, dead fraction and mean cosine over one full pass of `rows` (default: validation)."""
    rows = data.val_rows if rows is None else rows
    stats, workspace = ReconstructionStats(sae.n_latents), Workspace()
    for start in range(0, len(rows), batch_size):
        x = data.batch(rows[start:start + batch_size]).to(sae.W_dec.device)
        acts, indices = sae.encode(x, matmul_dtype, workspace)
        stats.update(x, sae.decode(acts, indices), acts, indices)
    return stats.result()


@torch.no_grad()
def final_metrics(sae: TopKSAE, data: EmbeddingData, batch_size: int = 2048,
                  matmul_dtype: torch.dtype | None = None) -> FinalMetrics:
    """One pass over every row: validation and training metrics, and latents dead over all rows."""
    rows = data.all_rows
    is_val = np.isin(rows, data.val_rows)
    val, trn = ReconstructionStats(sae.n_latents), ReconstructionStats(sae.n_latents)
    workspace = Workspace()
    for start in range(0, len(rows), batch_size):
        x = data.batch(rows[start:start + batch_size]).to(sae.W_dec.device)
        acts, indices = sae.encode(x, matmul_dtype, workspace)
        x_hat = sae.decode(acts, indices)
        held = torch.from_numpy(is_val[start:start + batch_size]).to(x.device)
        for stats, mask in ((val, held), (trn, ~held)):
            if bool(mask.any()):
                stats.update(x[mask], x_hat[mask], acts[mask], indices[mask])
    return FinalMetrics(val.result(), trn.result(), dead_fraction(val.counts + trn.counts))


def init_sae(data: EmbeddingData, cfg: TrainConfig, rng: np.random.Generator) -> TopKSAE:
    """A TopKSAE whose b_pre, s and decoder are initialised from a sample of training rows."""
    sae = TopKSAE(data.dim, cfg.n_latents, cfg.k, seed=cfg.seed)
    n_train = len(data.train_rows)
    init_rows = rng.choice(data.train_rows, size=min(cfg.init_sample, n_train), replace=False)
    sae.init_from_data_(data.batch(init_rows), cfg.pre_bias, cfg.decoder_init, cfg.seed)
    return sae


def train(data: EmbeddingData, cfg: TrainConfig, on_step: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train an SAE on `data.train_rows`; evaluate on `data.val_rows` and all rows. Never prints."""
    from ..devices import pick_device

    t_start = time.perf_counter()
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sae = init_sae(data, cfg, rng).to(device)
    optimizer, fused = make_optimizer(sae.parameters(), cfg.learning_rate, cfg.fused_adam)
    matmul_dtype = choose_matmul_dtype(cfg.matmul, device)
    plan = make_plan(cfg, len(data.train_rows), data.dim)
    tracker, workspace = DeadTracker(cfg.n_latents, device), Workspace()
    sync = torch.cuda.synchronize if cfg.profile and device.type == "cuda" else None
    timer = StageTimer(sync)
    history: list[dict] = []
    order = np.empty(0, dtype=np.int64)
    val = None
    for step in range(plan.total):
        timer.start()
        if len(order) < cfg.batch_size:  # a fresh permutation per epoch; drop the ragged tail
            order = rng.permutation(data.train_rows)
        rows, order = order[:cfg.batch_size], order[cfg.batch_size:]
        x_tilde = sae.normalize(data.batch(rows).to(device))
        timer.mark("data")
        lr = lr_at(step, plan.total, cfg.learning_rate, plan.warmup, cfg.decay_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        dead = tracker.dead(plan.aux_window) if cfg.aux_weight > 0 else None
        stats, acts, indices = train_step(sae, optimizer, x_tilde, dead, cfg.aux_weight, plan.k_aux, cfg.aux_batch,
                                          cfg.grad_clip, matmul_dtype, workspace, timer)
        tracker.update(acts, indices)
        if cfg.revive > 0 and step < plan.total * (1 - cfg.decay_fraction):
            with torch.no_grad():
                sae.b_enc.add_(tracker.dead(plan.aux_window).float(), alpha=cfg.revive)
        timer.mark("dead")
        timer.steps += 1
        last = step + 1 == plan.total
        val = evaluate(sae, data, matmul_dtype=matmul_dtype) if (step + 1) % plan.eval_every == 0 and not last else None
        samples = (step + 1) * cfg.batch_size
        rate = samples / max(sum(timer.totals.values()), 1e-9)
        progress = Progress(step + 1, plan.total, samples, stats.loss, stats.fvu, stats.aux,
                            tracker.dead_fraction(min(cfg.dead_window, len(data.train_rows))), lr, rate, val)
        history.append({"step": step + 1, "samples": samples, "loss": stats.loss, "fvu": stats.fvu,
                        "aux": stats.aux, "dead_fraction": progress.dead_fraction, "lr": lr,
                        **({f"val_{key}": value for key, value in val.to_dict().items()} if val else {})})
        if on_step is not None:
            on_step(progress)
    samples_per_s = plan.total * cfg.batch_size / max(sum(timer.totals.values()), 1e-9)
    final = final_metrics(sae, data, matmul_dtype=matmul_dtype)
    history[-1].update({f"val_{key}": value for key, value in final.val.to_dict().items()})
    window = min(cfg.dead_window, len(data.train_rows))  # Gao et al.'s 10M, or one epoch for small data
    dead_window = tracker.dead_fraction(window)
    matmul = "bf16" if matmul_dtype else "fp32"
    sae.meta.update({
        "training": {**asdict(cfg), "lr_used": cfg.learning_rate, "k_aux_used": plan.k_aux,
                     "aux_window_used": plan.aux_window, "steps": plan.total, "fused_adam": fused, "matmul": matmul,
                     "source": data.source, "train_rows": int(len(data.train_rows)),
                     "val_rows": int(len(data.val_rows))},
        "metrics": {**final.val.to_dict(), "samples_per_s": samples_per_s, "train_fvu": final.train.fvu,
                    "dead_window": dead_window, "dead_window_samples": min(window, tracker.seen),
                    "dead_all_rows": final.dead_all_rows, "all_rows": final.val.samples + final.train.samples},
    })
    if data.store is not None:
        sae.meta["model"] = asdict(data.store.model)
        sae.meta["index_format"] = data.store.manifest.format
    return TrainResult(sae, final.val, history, samples_per_s, time.perf_counter() - t_start, fused, matmul, final,
                       dead_window, timer.ms_per_step())


def save_result(result: TrainResult, out_dir: Path, name: str) -> Path:
    """Write NAME.safetensors + NAME.json (a verified pair), NAME.metrics.json and NAME.curve.png."""
    from .checkpoint import save_outputs

    return save_outputs(result, out_dir, name)
