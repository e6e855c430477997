"""TrainConfig: how to train a top-k SAE (saved with the checkpoint as its training args)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError

BASE_LR = 6e-3
"""Adam's peak learning rate at n = 16,384 latents, scaled by (16384 / n)^(1/8) (see `learning_rate`).

Gao et al. use 2e-4·sqrt(16384/n) for ~1e9 samples; an index gives ~1e5 (one epoch: 30–200 steps).
Measured with bench/bench_sae.py (1 epoch, warm-up 5 %, linear decay over the last half):
issue 16's task (200k × 512, n 16,384, k 32): 2e-3 val FVU 0.2034, 6e-3 0.1276 (0 % dead; the
plain reference's best, 3e-3 constant, 0.1387); the sample index (9k × 256, n 2,048, k 16, batch
256): 3e-3 0.1198 / 51 % never-firing latents, 5.7e-3 0.0908 / 28 %, 8e-3 0.0914 / 15 %, 1e-2
0.1077 / 10 %. The best rate barely moves with n, so the sqrt(n) rule is replaced by a 1/8 power.
(Those figures predate the scaled encoder rate, `TrainConfig.encoder_lr_scale`.) It is the upper
candidate of the learning-rate search, not a rate fit for every data set: with the current defaults
the search kept it on four bench members and took 1/3 of it on three (README, SAE training)."""


LR_FACTORS = (1 / 3, 1.0)
"""Multiples of the centre learning rate tried by the search (`TrainConfig.lr_search`). 3× the centre was
never chosen on the bench family once the encoder's rate was scaled (`TrainConfig.encoder_lr_scale`);
dropping it saves a third of the search."""


def _finite_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a finite number > 0, got {value!r}")


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
    """Adam peak learning rate; None = chosen from the data among LR_FACTORS × BASE_LR · (16384 / n)^(1/8)."""
    lr_search: float = 0.10
    """Share of the steps (at least 3) during which the learning-rate candidates train side by side when
    lr is None; the best on its last fresh batches continues (0 = no search: the centre candidate)."""
    warmup_steps: int | None = None
    """Linear warm-up steps; None = 5 % of the steps (at least 1, at most 1000)."""
    decay_fraction: float = 0.5
    """The last fraction of steps decays the learning rate linearly to 0."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value (0 = off). Off by default: the FVU-normalised loss keeps
    the norm near 0.1–0.2 on every bench member, so a clip at 1 never acted and only cost two passes."""
    aux_weight: float = 0.0
    """Weight of the AuxK loss (0 = no AuxK; Gao et al. use 1/32). Off by default: with `revive` through the
    whole run and the scaled encoder rate, AuxK at 1/32 changed neither val FVU (±0.0005) nor the latents
    firing on no row on the bench family (issue 16's task 0.1288 vs 0.1290, 4 atoms a row 0.2378 vs 0.2381,
    d 1152 0.4143 vs 0.4148, the sample index 0.1216 vs 0.1218) and cost 15–25 % of every step."""
    k_aux: int | None = None
    """Dead latents used by AuxK; None = min(d // 2, 512)."""
    aux_batch: int = 256
    """AuxK uses the first this-many samples of each batch (its cost grows with B·k_aux)."""
    aux_window: int | None = None
    """AuxK treats a latent as dead after this many samples without firing; None = 4 batches
    (revives latents from the first steps on instead of after a long window)."""
    revive: float = 0.05
    """Each step, raise b_enc of latents dead by `aux_window` by this much (in units of the pre-activations'
    scale, ~1) times the current share of the peak learning rate: a dead latent then fires, gets gradients
    and learns, and latents silenced during the decay come back too (0 = off). Stopping it at the decay
    left 1.8 % (4 atoms a row), 2.5 % (d 1152) and 27 % (the sample index) of the latents firing on no row."""
    encoder_lr_scale: float = 2.0
    """The encoder's learning rate is this × its mean initial row norm × the peak rate (see
    `train.parameter_groups`). Bench family, one epoch, latents firing on no row (val FVU), revive through
    the decay: 2 → 4 atoms a row 0.00 % (0.238), d 1152 0.00 % (0.414), the sample index 0.00 % (0.122);
    the shared rate of earlier versions → 0.00 % (0.249), 0.58 % (0.375), 10.5 % (0.140); 1 → the sample
    index 0.00 % (0.134). With revive stopping at the decay, 1 / 2: 0.39 / 1.57 %, 0.13 / 0.45 %, 2.6 / 3.5 %."""
    dead_window: int = 10_000_000
    """Reported dead fraction: latents that did not fire in the last min(this, one epoch, samples
    trained) training samples (Gao et al.: 10M; one epoch for small data)."""
    val_fraction: float = 0.1
    """Share of rows held out for validation (fixed by a hash of the row number)."""
    seed: int = 0
    """Seeds initialisation and batch order."""
    device: str | None = None
    """torch device (None = cuda > mps > cpu)."""
    pre_bias: Literal["median", "mean"] = "median"
    """b_pre initialisation: geometric median or mean of a sample of training rows."""
    decoder_init: Literal["data", "random"] = "data"
    """Decoder initialisation: unit directions of centred training rows, or Gaussian. Data: one-epoch val FVU
    0.30 vs 0.59 (4 atoms a row, lr 6e-3), 0.42 vs 0.67 (32 atoms a row, lr 2e-3) on the bench family; with
    4 atoms a row 0.24 % of the latents fire on no row (the 10 % validation pass alone reads 12 %: it misses
    rare latents)."""
    matmul: Literal["auto", "fp32", "bf16"] = "auto"
    """Encoder matmul precision for latent selection; auto = bf16 where the device runs it fast."""
    fused_adam: bool | None = None
    """Use Adam(fused=True); None = when the device supports it."""
    eval_every: int = 0
    """Evaluate on the validation split every this many steps (0 = 4 times per run)."""
    max_steps: int | None = None
    """Stop after this many steps (benchmarks and tests)."""
    init_sample: int = 16384
    """Rows used to initialise b_pre, s and the decoder."""
    profile: bool = False
    """Synchronise the device at each stage boundary so per-stage times are exact (GPU only)."""

    def __post_init__(self):
        if self.n_latents < 1 or not 0 < self.k <= self.n_latents:
            raise UsageError(f"need 0 < k <= latents, got k={self.k}, latents={self.n_latents}")
        _finite_positive("epochs", self.epochs)
        if self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise UsageError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr is not None:
            _finite_positive("lr", self.lr)
        if not 0 <= self.lr_search <= 1:
            raise UsageError(f"lr_search must be in [0, 1], got {self.lr_search}")
        if not 0 <= self.decay_fraction <= 1 or not math.isfinite(self.grad_clip) or self.grad_clip < 0:
            raise UsageError(f"bad decay_fraction {self.decay_fraction} or grad_clip {self.grad_clip}")
        if self.pre_bias not in ("median", "mean") or self.decoder_init not in ("data", "random"):
            raise UsageError(f"bad pre_bias {self.pre_bias!r} or decoder_init {self.decoder_init!r}")
        if self.matmul not in ("auto", "fp32", "bf16"):
            raise UsageError(f"bad matmul {self.matmul!r}")
        _finite_positive("encoder_lr_scale", self.encoder_lr_scale)
        if self.dead_window < 1 or (self.aux_window is not None and self.aux_window < 1):
            raise UsageError(f"dead windows must be >= 1, got {self.dead_window}, {self.aux_window}")

    @property
    def learning_rate(self) -> float:
        """The given learning rate, else the centre of the search (the rate used without one)."""
        return self.lr if self.lr is not None else BASE_LR * (16384 / self.n_latents) ** 0.125

    def lr_candidates(self) -> list[float]:
        """Peak learning rates to try: the given one, or LR_FACTORS around `learning_rate`."""
        if self.lr is not None or self.lr_search <= 0:
            return [self.learning_rate]
        return [self.learning_rate * f for f in LR_FACTORS]
