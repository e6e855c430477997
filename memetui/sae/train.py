"""Train a TopKSAE on index embeddings or any [N, d] array: the loop around `step.train_step`.

Data (`data.py`), the step and its gradients (`step.py`), dead-latent tracking (`dead.py`),
metrics (`metrics.py`), checkpoints (`checkpoint.py`) and the curve (`plot.py`) sit beside it.
"""

from __future__ import annotations

import copy
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
    search: int
    """Steps during which the learning-rate candidates train side by side (0: one learning rate)."""


def make_plan(cfg: TrainConfig, n_train: int, d: int, candidates: int = 1) -> Plan:
    """Steps (epochs × ⌊N_train / batch⌋, capped by max_steps), warm-up, eval cadence, AuxK, lr search."""
    per_epoch = max(n_train // cfg.batch_size, 1)
    total = max(int(round(cfg.epochs * per_epoch)), 1)
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(max(total // 20, 1), 1000)
    k_aux = cfg.k_aux if cfg.k_aux is not None else min(d // 2, 512)
    aux_window = cfg.aux_window or 4 * cfg.batch_size
    search = 0 if candidates < 2 else min(max(int(round(cfg.lr_search * total)), 3), total)
    return Plan(total, warmup, cfg.eval_every or max(total // 4, 1), k_aux, aux_window, search)


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
    """Mean milliseconds per step for each stage (wall time)."""
    cpu_samples_per_s: float = 0.0
    """Samples per second of the process's CPU time (the speed on an otherwise idle core per thread)."""
    profile_cpu_ms: dict[str, float] = field(default_factory=dict)
    """Mean CPU milliseconds per step for each stage."""


INTERIM_EVAL_ROWS = 16384
"""Validation rows the evaluations during training read at most (the final pass reads every row)."""


def interim_rows(rows: np.ndarray, limit: int = INTERIM_EVAL_ROWS) -> np.ndarray:
    """At most `limit` of `rows`, evenly strided (the same rows at every evaluation of a run)."""
    return rows if len(rows) <= limit else rows[:: -(-len(rows) // limit)]


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


def parameter_groups(sae: TopKSAE, encoder_lr_scale: float) -> list[dict]:
    """Adam parameter groups: the encoder's learning rate is `encoder_lr_scale` × its mean row norm × the peak.

    Adam moves every coordinate by about the learning rate whatever its size; the decoder's rows are
    unit vectors, the encoder's start 0.05–0.14 long on the bench family, so at one shared rate each
    encoder step is 10–20× larger relative to the weights and knocks latents out of every row's top-k.
    """
    enc_norm = float(sae.W_enc.detach().norm(dim=1).mean())
    return [{"params": [sae.W_enc], "lr_scale": encoder_lr_scale * enc_norm},
            {"params": [sae.b_enc, sae.W_dec, sae.b_dec], "lr_scale": 1.0}]


class Run:
    """One SAE in training: its peak learning rate, Adam, dead-latent tracker, buffers and history."""

    def __init__(self, sae: TopKSAE, lr: float, cfg: TrainConfig, device):
        self.sae, self.lr = sae, lr
        self.optimizer, self.fused = make_optimizer(parameter_groups(sae, cfg.encoder_lr_scale), lr, cfg.fused_adam)
        self.tracker, self.workspace = DeadTracker(cfg.n_latents, device), Workspace()
        self.history: list[dict] = []


class Trainer:
    """A training run advanced one step at a time: `step()` until `done`, then `finish()`. Never prints.

    Without a given lr, the first `plan.search` steps train one copy of the initial SAE per learning
    rate of `cfg.lr_candidates()` on the same batches; the copy with the lowest FVU on its last fresh
    batches (each measured before the step trains on it, so on unseen rows) continues, the others are
    dropped. Their time is part of the run's samples/s and profile.
    """

    def __init__(self, data: EmbeddingData, cfg: TrainConfig):
        from ..devices import pick_device

        self.data, self.cfg, self.t_start = data, cfg, time.perf_counter()
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        sae = init_sae(data, cfg, self.rng).to(self.device)
        lrs = cfg.lr_candidates()
        self.runs = [Run(sae if i == 0 else copy.deepcopy(sae), lr, cfg, self.device) for i, lr in enumerate(lrs)]
        self.matmul_dtype = choose_matmul_dtype(cfg.matmul, self.device)
        self.plan = make_plan(cfg, len(data.train_rows), data.dim, len(lrs))
        self.timer = StageTimer(torch.cuda.synchronize if cfg.profile and self.device.type == "cuda" else None)
        self.order = np.empty(0, dtype=np.int64)
        self.steps_done, self.search = 0, {}
        self.dead_window = min(cfg.dead_window, len(data.train_rows))  # Gao et al.'s 10M, or one epoch

    @property
    def done(self) -> bool:
        """True once every planned step has run."""
        return self.steps_done >= self.plan.total

    @property
    def sae(self) -> TopKSAE:
        """The SAE being trained (during the learning-rate search: the first candidate's)."""
        return self.runs[0].sae

    def step(self) -> Progress:
        """Train one batch (on every candidate while the learning-rate search lasts)."""
        cfg, plan, timer, step = self.cfg, self.plan, self.timer, self.steps_done
        timer.start()
        if len(self.order) < cfg.batch_size:  # a fresh permutation per epoch; drop the ragged tail
            self.order = self.rng.permutation(self.data.train_rows)
        rows, self.order = self.order[:cfg.batch_size], self.order[cfg.batch_size:]
        x_tilde = self.sae.normalize(self.data.batch(rows).to(self.device))
        timer.mark("data")
        for run in self.runs:
            lr = lr_at(step, plan.total, run.lr, plan.warmup, cfg.decay_fraction)
            for group in run.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            dead = run.tracker.dead(plan.aux_window) if cfg.aux_weight > 0 else None
            stats, acts, indices = train_step(run.sae, run.optimizer, x_tilde, dead, cfg.aux_weight, plan.k_aux,
                                              cfg.aux_batch, cfg.grad_clip, self.matmul_dtype, run.workspace, timer)
            run.tracker.update(acts, indices)
            if cfg.revive > 0:  # fades with the learning rate: latents silenced during the decay come back too
                with torch.no_grad():
                    run.sae.b_enc.add_(run.tracker.dead(plan.aux_window).float(), alpha=cfg.revive * lr / run.lr)
            timer.mark("dead")
            run.history.append({"step": step + 1, "samples": (step + 1) * cfg.batch_size, "loss": stats.loss,
                                "fvu": stats.fvu, "aux": stats.aux, "lr": lr,
                                "dead_fraction": run.tracker.dead_fraction(self.dead_window)})
        timer.steps += 1
        self.steps_done = step = step + 1
        if len(self.runs) > 1 and step >= plan.search:
            self._keep_best()
        run = self.runs[0]
        val = None
        if step % plan.eval_every == 0 and not self.done:
            val = evaluate(run.sae, self.data, interim_rows(self.data.val_rows), matmul_dtype=self.matmul_dtype)
            run.history[-1].update({f"val_{key}": value for key, value in val.to_dict().items()})
        h = run.history[-1]
        rate = step * cfg.batch_size / max(sum(timer.totals.values()), 1e-9)
        return Progress(step, plan.total, h["samples"], h["loss"], h["fvu"], h["aux"], h["dead_fraction"], h["lr"], rate,
                        val)

    def _keep_best(self) -> None:
        """End the learning-rate search: keep the run with the lowest FVU on its last fresh batches."""
        last = max(self.plan.search // 3, 1)
        scores = [float(np.mean([h["fvu"] for h in run.history[-last:]])) for run in self.runs]
        best = int(np.argmin(scores))
        self.search = {"candidates": [run.lr for run in self.runs], "scores": scores, "steps": self.plan.search,
                       "scored_steps": last, "chosen": self.runs[best].lr}
        self.runs = [self.runs[best]]

    def finish(self) -> TrainResult:
        """Evaluate the trained SAE on every row, record its metadata and return the TrainResult."""
        cfg, plan, data, run = self.cfg, self.plan, self.data, self.runs[0]
        sae, timer = run.sae, self.timer
        samples_per_s = plan.total * cfg.batch_size / max(sum(timer.totals.values()), 1e-9)
        final = final_metrics(sae, data, matmul_dtype=self.matmul_dtype)
        run.history[-1].update({f"val_{key}": value for key, value in final.val.to_dict().items()})
        window = self.dead_window
        dead_window = run.tracker.dead_fraction(window)
        matmul = "bf16" if self.matmul_dtype else "fp32"
        sae.meta.update({
            "training": {**asdict(cfg), "lr_used": run.lr, "lr_search": self.search, "k_aux_used": plan.k_aux,
                         "aux_window_used": plan.aux_window, "steps": plan.total, "fused_adam": run.fused,
                         "matmul": matmul, "source": data.source, "train_rows": int(len(data.train_rows)),
                         "val_rows": int(len(data.val_rows))},
            "metrics": {**final.val.to_dict(), "samples_per_s": samples_per_s, "train_fvu": final.train.fvu,
                        "dead_window": dead_window, "dead_window_samples": min(window, run.tracker.seen),
                        "dead_all_rows": final.dead_all_rows, "all_rows": final.val.samples + final.train.samples},
        })
        if data.store is not None:
            sae.meta["model"] = asdict(data.store.model)
            sae.meta["index_format"] = data.store.manifest.format
        return TrainResult(sae, final.val, run.history, samples_per_s, time.perf_counter() - self.t_start, run.fused,
                           matmul, final, dead_window, timer.ms_per_step(),
                           plan.total * cfg.batch_size / max(sum(timer.cpu_totals.values()), 1e-9),
                           timer.ms_per_step(cpu=True))


def train(data: EmbeddingData, cfg: TrainConfig, on_step: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train an SAE on `data.train_rows`; evaluate on `data.val_rows` and all rows. Never prints."""
    trainer = Trainer(data, cfg)
    while not trainer.done:
        progress = trainer.step()
        if on_step is not None:
            on_step(progress)
    return trainer.finish()


def save_result(result: TrainResult, out_dir: Path, name: str) -> Path:
    """Write NAME.safetensors + NAME.json (a verified pair), NAME.metrics.json and NAME.curve.png."""
    from .checkpoint import save_outputs

    return save_outputs(result, out_dir, name)
