"""Train a TopKSAE on index embeddings or any [N, d] .npy: AuxK, Adam, warmup, validation metrics.

The step (`train_step`) is the paper's recipe on sparse kernels: one dense encoder matmul, top-k,
an `embedding_bag` decoder, sparse weight gradients for the k selected latents, the decoder
gradient's parallel part removed, fused Adam, unit-norm decoder rows. Everything else here —
data, dead-latent tracking, schedule, evaluation, plotting — sits beside it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, NamedTuple

import numpy as np
import torch

from ..errors import SAEError, UsageError
from .kernels import sparse_decode, topk_encode
from .metrics import EvalMetrics, ReconstructionStats
from .model import TopKSAE


BASE_LR = 2e-3
"""Gao et al. use 2e-4 at n = 16384 for ~1e9 samples; our budgets are ~1e5 samples (one epoch of an
index), where 2e-4 leaves FVU ≈ 0.5 and 2e-3 reaches ≈ 0.15 (bench/bench_sae.py)."""


@dataclass
class TrainConfig:
    """How to train an SAE (saved with the checkpoint as its training args)."""

    n_latents: int = 16384
    """Number of latents n."""
    k: int = 32
    """Active latents per sample."""
    epochs: float = 1.0
    """Passes over the training split (fractions allowed)."""
    batch_size: int = 1024
    """Samples per optimiser step."""
    lr: float | None = None
    """Adam learning rate; None = BASE_LR · sqrt(16384 / n_latents) (Gao et al.'s 1/sqrt(n) scaling)."""
    warmup_steps: int | None = None
    """Linear warm-up steps; None = 5 % of the steps (at least 1, at most 1000)."""
    decay_fraction: float = 0.5
    """The last fraction of steps decays the learning rate linearly to 0 (bench_sae, n 16,384, k 32,
    180k rows x 2 epochs, bf16 selection: 0.2 gave val FVU 0.1448 with 1.01 % dead latents, 0.5 gave
    0.1478 with 0.76 %; with fp32 selection 0.5 gives 0.1451 with 0.84 %)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 = off)."""
    aux_weight: float = 1 / 32
    """Weight of the AuxK loss (0 = no AuxK)."""
    k_aux: int | None = None
    """Dead latents used by AuxK; None = min(d // 2, 512)."""
    aux_batch: int = 256
    """AuxK uses the first this-many samples of each batch (its scatter costs B·k_aux; 256 keeps it cheap)."""
    dead_window: int | None = None
    """A latent is dead after this many samples without firing; None = N_train // 8, ≥ 4 batches, ≤ 10M."""
    val_fraction: float = 0.1
    """Share of rows held out for validation (fixed by a hash of the row number)."""
    seed: int = 0
    """Seeds initialisation and batch order."""
    device: str | None = None
    """torch device (None = cuda > mps > cpu)."""
    pre_bias: Literal["median", "mean"] = "median"
    """b_pre initialisation: geometric median or mean of a sample of training rows."""
    decoder_init: Literal["data", "random"] = "random"
    """Decoder initialisation: Gaussian (default; measured better), or unit directions of centred samples."""
    matmul: Literal["auto", "fp32", "bf16"] = "auto"
    """Encoder matmul precision for latent selection; auto = bf16 on CUDA, fp32 on CPU (see choose_matmul_dtype)."""
    fused_adam: bool | None = None
    """Use Adam(fused=True); None = when the device supports it."""
    eval_every: int = 0
    """Evaluate on the validation split every this many steps (0 = 4 times per run)."""
    max_steps: int | None = None
    """Stop after this many steps (benchmarks and tests)."""
    init_sample: int = 16384
    """Rows used to initialise b_pre, s and the decoder."""

    def __post_init__(self):
        if self.n_latents < 1 or not 0 < self.k <= self.n_latents:
            raise UsageError(f"need 0 < k <= latents, got k={self.k}, latents={self.n_latents}")
        if self.batch_size < 1 or self.epochs <= 0:
            raise UsageError(f"need batch >= 1 and epochs > 0, got {self.batch_size}, {self.epochs}")
        if not 0 < self.val_fraction < 1:
            raise UsageError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")
        if self.pre_bias not in ("median", "mean") or self.decoder_init not in ("data", "random"):
            raise UsageError(f"bad pre_bias {self.pre_bias!r} or decoder_init {self.decoder_init!r}")
        if self.matmul not in ("auto", "fp32", "bf16"):
            raise UsageError(f"bad matmul {self.matmul!r}")

    @property
    def learning_rate(self) -> float:
        """The learning rate in use."""
        return self.lr if self.lr is not None else BASE_LR * math.sqrt(16384 / self.n_latents)


# -- data ------------------------------------------------------------------------------------------
def row_hash(rows: np.ndarray) -> np.ndarray:
    """splitmix64 of row numbers (uint64): a fixed pseudo-random value per row."""
    z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_rows(rows: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) rows: a row is held out iff its hash falls below val_fraction (no leak)."""
    held = (row_hash(rows) >> np.uint64(11)).astype(np.float64) / float(1 << 53) < val_fraction
    return rows[~held], rows[held]


@dataclass
class EmbeddingData:
    """An [N, d] array (memory-mapped; batches are read by row and converted per batch) and its split."""

    array: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray
    store: object | None = None
    source: str = ""

    @property
    def dim(self) -> int:
        """Embedding dimension d."""
        return int(self.array.shape[1])

    def batch(self, rows: np.ndarray) -> torch.Tensor:
        """float32 [len(rows), d] tensor of the given rows (read in sorted order for locality)."""
        return torch.from_numpy(np.asarray(self.array[np.sort(rows)], dtype=np.float32))


def open_training_data(source, val_fraction: float = 0.1) -> EmbeddingData:
    """An index folder / IndexStore (live rows only), a .npy path ([N, d]) or an in-memory array."""
    from ..index.store import IndexStore

    store = None
    if isinstance(source, IndexStore):
        store = source
    elif isinstance(source, (str, Path)) and Path(source).suffix != ".npy":
        store = IndexStore.open(source)
    if store is not None:
        array, rows, name = store.embeddings, np.flatnonzero(store.live_mask()), str(store.path)
    elif isinstance(source, np.ndarray):
        array, name = source, "array"
        rows = np.arange(array.shape[0])
    else:
        try:
            array = np.load(Path(source).expanduser(), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SAEError(f"cannot read embeddings {source}: {exc}") from None
        rows, name = np.arange(array.shape[0]), str(source)
    if array.ndim != 2 or array.dtype.kind != "f":
        raise SAEError(f"embeddings {name} must be a float [N, d] array, found {array.shape} {array.dtype}")
    train, val = split_rows(rows, val_fraction)
    if len(train) < 2 or len(val) < 1:
        raise SAEError(f"too few rows to train an SAE on {name}: {len(rows)}")
    return EmbeddingData(array, train, val, store, name)


# -- dead latents ----------------------------------------------------------------------------------
class DeadTracker:
    """Samples since each latent last fired; dead = at least `window` samples without firing."""

    def __init__(self, n_latents: int, window: int, device):
        self.window = window
        self.since = torch.zeros(n_latents, dtype=torch.int64, device=device)

    def update(self, acts: torch.Tensor, indices: torch.Tensor) -> None:
        """Count a batch's code ([B, k])."""
        self.since += acts.shape[0]
        self.since[indices[acts > 0]] = 0

    def dead(self) -> torch.Tensor:
        """[n] bool mask of dead latents."""
        return self.since >= self.window

    def dead_fraction(self) -> float:
        """Share of latents dead right now."""
        return float(self.dead().double().mean())


# -- the step --------------------------------------------------------------------------------------
class StepStats(NamedTuple):
    """Losses of one optimiser step (floats, already synchronised)."""

    loss: float
    fvu: float
    aux: float


def train_step(sae: TopKSAE, optimizer: torch.optim.Optimizer, x_tilde: torch.Tensor, tracker: DeadTracker,
               cfg: TrainConfig, k_aux: int, matmul_dtype) -> StepStats:
    """One step on a normalised batch x̃ [B, d]: loss = FVU_batch + aux_weight · AuxK (both normalised).

    AuxK: the top-k_aux dead latents reconstruct the detached residual e = x̃ − x̂ as γ·ê with γ the
    (detached, ≥ 0) least-squares gain. Without γ, dead latents' large activations overshoot e and
    the loss pushes them further below zero, killing more latents (measured in the tests).
    """
    dead = tracker.dead() if cfg.aux_weight > 0 else None
    acts, indices, aux_acts, aux_indices = topk_encode(x_tilde, sae.W_enc, sae.b_enc, sae.k, dead, k_aux, matmul_dtype,
                                                      cfg.aux_batch)
    x_hat = sae.decode_normalized(acts, indices)
    fvu = (x_hat - x_tilde).pow(2).sum() / (x_tilde - x_tilde.mean(0)).pow(2).sum()
    loss, aux = fvu, torch.zeros(())
    if aux_indices.shape[1] > 0:  # dead latents reconstruct the (detached) residual
        residual = (x_tilde - x_hat).detach()[:aux_indices.shape[0]]
        e_hat = sparse_decode(aux_acts, aux_indices, sae.W_dec)
        with torch.no_grad():  # least-squares gain: dead latents' acts are often far too large (or small)
            gain = ((e_hat * residual).sum() / e_hat.pow(2).sum().clamp_min(1e-12)).clamp_min(0.0)
        aux = (gain * e_hat - residual).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum()
        loss = loss + cfg.aux_weight * aux
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip, foreach=True)
    sae.remove_parallel_grad_()
    optimizer.step()
    sae.unit_norm_decoder_()
    tracker.update(acts.detach(), indices)
    return StepStats(float(loss.detach()), float(fvu.detach()), float(aux.detach()))


def lr_at(step: int, total: int, base: float, warmup: int, decay_fraction: float) -> float:
    """Linear warm-up over `warmup` steps, constant, then linear decay to 0 over the last fraction."""
    if step < warmup:
        return base * (step + 1) / warmup
    decay_start = int(total * (1 - decay_fraction))
    if decay_fraction > 0 and step >= decay_start:
        return base * max(total - step, 1) / max(total - decay_start, 1)
    return base


def make_optimizer(params, lr: float, device: torch.device, fused: bool | None) -> tuple[torch.optim.Optimizer, bool]:
    """Adam (betas 0.9/0.999), fused where supported; returns (optimizer, fused?)."""
    params = list(params)
    if fused is not False:
        try:
            return torch.optim.Adam(params, lr=lr, eps=6.25e-10, fused=True), True
        except (RuntimeError, TypeError):
            if fused:
                raise
    return torch.optim.Adam(params, lr=lr, eps=6.25e-10, foreach=True), False


# -- evaluation ------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(sae: TopKSAE, data: EmbeddingData, rows: np.ndarray | None = None, batch_size: int = 2048,
             device=None) -> EvalMetrics:
    """FVU, L0, dead fraction and mean cosine over one full pass of `rows` (default: validation)."""
    rows = data.val_rows if rows is None else rows
    device = device or sae.W_dec.device
    stats = ReconstructionStats(sae.n_latents)
    for start in range(0, len(rows), batch_size):
        x = data.batch(rows[start:start + batch_size]).to(device)
        out = sae(x)
        stats.update(x, out.x_hat, out.acts, out.indices)
    return stats.result()


# -- the loop --------------------------------------------------------------------------------------
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
class TrainResult:
    """A trained SAE with its validation metrics and training history."""

    sae: TopKSAE
    metrics: EvalMetrics
    history: list[dict] = field(default_factory=list)
    samples_per_s: float = 0.0
    seconds: float = 0.0
    fused_adam: bool = False
    matmul: str = "fp32"


def choose_matmul_dtype(cfg: TrainConfig, device: torch.device):
    """None (fp32) or torch.bfloat16 for the encoder's selection matmul."""
    if cfg.matmul == "bf16":
        return torch.bfloat16
    if cfg.matmul == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16
    # CPU: fp32 even where bf16 is faster. bench_sae (n 16,384, k 32, 2 epochs, AVX512-BF16): bf16
    # selection ran 3,560 samples/s at val FVU 0.148, fp32 3,299/s at 0.145 (the dense fp32
    # baseline: 0.146); 8 % speed is not worth worse reconstructions.
    return None


def train(data: EmbeddingData, cfg: TrainConfig, on_step: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train an SAE on `data.train_rows`; evaluate on `data.val_rows`. Never prints."""
    from ..devices import pick_device

    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    d, n_train = data.dim, len(data.train_rows)
    sae = TopKSAE(d, cfg.n_latents, cfg.k, seed=cfg.seed)
    init_rows = rng.choice(data.train_rows, size=min(cfg.init_sample, n_train), replace=False)
    sae.init_from_data_(data.batch(init_rows), cfg.pre_bias, cfg.decoder_init, cfg.seed)
    sae.to(device)
    optimizer, fused = make_optimizer(sae.parameters(), cfg.learning_rate, device, cfg.fused_adam)
    matmul_dtype = choose_matmul_dtype(cfg, device)
    k_aux = cfg.k_aux if cfg.k_aux is not None else min(d // 2, 512)
    window = cfg.dead_window or int(min(10_000_000, max(4 * cfg.batch_size, n_train // 8)))
    tracker = DeadTracker(cfg.n_latents, window, device)
    steps_per_epoch = max(n_train // cfg.batch_size, 1)
    total = max(int(round(cfg.epochs * steps_per_epoch)), 1)
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(max(total // 20, 1), 1000)
    eval_every = cfg.eval_every or max(total // 4, 1)
    history: list[dict] = []
    order = np.empty(0, dtype=np.int64)
    train_seconds, t_start = 0.0, time.perf_counter()
    for step in range(total):
        if len(order) < cfg.batch_size:  # a fresh permutation per epoch; drop the ragged tail
            order = rng.permutation(data.train_rows)
        rows, order = order[:cfg.batch_size], order[cfg.batch_size:]
        t0 = time.perf_counter()
        x_tilde = sae.normalize(data.batch(rows).to(device))
        lr = lr_at(step, total, cfg.learning_rate, warmup, cfg.decay_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        stats = train_step(sae, optimizer, x_tilde, tracker, cfg, k_aux, matmul_dtype)
        train_seconds += time.perf_counter() - t0
        val = evaluate(sae, data) if (step + 1) % eval_every == 0 or step + 1 == total else None
        samples = (step + 1) * cfg.batch_size
        progress = Progress(step + 1, total, samples, stats.loss, stats.fvu, stats.aux, tracker.dead_fraction(),
                            lr, samples / max(train_seconds, 1e-9), val)
        history.append({"step": step + 1, "samples": samples, "loss": stats.loss, "fvu": stats.fvu,
                        "aux": stats.aux, "dead_fraction": progress.dead_fraction, "lr": lr,
                        **({f"val_{key}": value for key, value in val.to_dict().items()} if val else {})})
        if on_step is not None:
            on_step(progress)
    metrics = val if val is not None else evaluate(sae, data)
    samples_per_s = total * cfg.batch_size / max(train_seconds, 1e-9)
    sae.meta.update({
        "training": {**asdict(cfg), "lr_used": cfg.learning_rate, "k_aux_used": k_aux, "dead_window_used": window,
                     "steps": total, "fused_adam": fused, "matmul": "bf16" if matmul_dtype else "fp32",
                     "source": data.source, "train_rows": n_train, "val_rows": int(len(data.val_rows))},
        "metrics": {**metrics.to_dict(), "samples_per_s": samples_per_s},
    })
    if data.store is not None:
        sae.meta["model"] = asdict(data.store.model)
        sae.meta["index_format"] = data.store.manifest.format
    return TrainResult(sae, metrics, history, samples_per_s, time.perf_counter() - t_start, fused,
                       "bf16" if matmul_dtype else "fp32")


# -- outputs ---------------------------------------------------------------------------------------
def save_result(result: TrainResult, out_dir: Path, name: str) -> Path:
    """Write NAME.safetensors, NAME.json, NAME.metrics.json (metrics + history) and NAME.curve.png."""
    from ..atomic import write_json_atomic

    out_dir = Path(out_dir)
    path = result.sae.save(out_dir / name)
    write_json_atomic(out_dir / f"{name}.metrics.json", {
        "validation": result.metrics.to_dict(), "samples_per_s": result.samples_per_s,
        "seconds": result.seconds, "history": result.history})
    plot_history(result.history, out_dir / f"{name}.curve.png")
    return path


def plot_history(history: list[dict], target: Path) -> None:
    """Training curve: train/validation FVU (log scale) and dead fraction against samples seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    samples = [h["samples"] for h in history]
    ax1.plot(samples, [h["fvu"] for h in history], label="train FVU (batch)", lw=1)
    val = [(h["samples"], h["val_fvu"]) for h in history if "val_fvu" in h]
    if val:
        ax1.plot(*zip(*val), "o-", label="validation FVU")
    ax1.set_yscale("log")
    ax1.set_xlabel("samples")
    ax1.legend()
    ax2.plot(samples, [h["dead_fraction"] for h in history], label="dead (train window)")
    val_dead = [(h["samples"], h["val_dead_fraction"]) for h in history if "val_dead_fraction" in h]
    if val_dead:
        ax2.plot(*zip(*val_dead), "o-", label="dead (validation pass)")
    ax2.set_xlabel("samples")
    ax2.legend()
    fig.tight_layout()
    with atomic_path(Path(target)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
