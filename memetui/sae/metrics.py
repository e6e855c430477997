"""SAE metrics as pure functions, plus a streaming accumulator for a full validation pass.

- FVU  = Σ‖x − x̂‖² / Σ‖x − x̄‖²   (ratio of sums; x̄ the global mean of the evaluated x)
- L0   = mean number of non-zero activations per sample
- dead = fraction of latents that never fired on the evaluated samples
- cos  = mean over samples of cos(x, x̂)
- MMCS = mean over true atoms of the max cosine with any learned direction
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Fraction of variance unexplained Σ‖x − x̂‖² / Σ‖x − x̄‖² for [B, d] tensors."""
    x, x_hat = x.double(), x_hat.double()
    return float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def l0(acts: torch.Tensor) -> float:
    """Mean number of non-zero entries per row of activations ([B, k] sparse or [B, n] dense)."""
    return float((acts != 0).sum(1).double().mean())


def dead_fraction(fire_counts: torch.Tensor) -> float:
    """Fraction of latents whose firing count ([n]) is zero."""
    return float((fire_counts == 0).double().mean())


def mean_cosine(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over rows of cos(x, x̂) ([B, d] each)."""
    return float(F.cosine_similarity(x.double(), x_hat.double(), dim=1, eps=1e-12).mean())


def mmcs(learned: torch.Tensor, true: torch.Tensor) -> float:
    """Mean max cosine similarity: for each true atom ([m, d]) the best learned direction ([n, d])."""
    learned = F.normalize(learned.float(), dim=1)
    true = F.normalize(true.float(), dim=1)
    return float((true @ learned.T).max(dim=1).values.mean())


def fire_counts(indices: torch.Tensor, acts: torch.Tensor, n_latents: int) -> torch.Tensor:
    """How many samples each latent fired on (activation > 0): [B, k] code -> [n] int64."""
    return torch.bincount(indices[acts > 0], minlength=n_latents)


@dataclass
class EvalMetrics:
    """Metrics of one full pass over a data split."""

    fvu: float
    l0: float
    dead_fraction: float
    mean_cosine: float
    samples: int

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


class ReconstructionStats:
    """Accumulates the sums behind FVU, L0, dead fraction and mean cosine over batches (float64)."""

    def __init__(self, n_latents: int):
        self.n_latents = n_latents
        self.err = 0.0
        self.sq = 0.0
        self.total = None
        self.cos = 0.0
        self.nonzero = 0
        self.samples = 0
        self.counts = torch.zeros(n_latents, dtype=torch.int64)

    def update(self, x: torch.Tensor, x_hat: torch.Tensor, acts: torch.Tensor, indices: torch.Tensor) -> None:
        """Add a batch: inputs x [B,d], reconstructions x̂ [B,d], code acts/indices [B,k]."""
        x, x_hat = x.double().cpu(), x_hat.double().cpu()
        self.err += float((x - x_hat).pow(2).sum())
        self.sq += float(x.pow(2).sum())
        total = x.sum(0)
        self.total = total if self.total is None else self.total + total
        self.cos += float(F.cosine_similarity(x, x_hat, dim=1, eps=1e-12).sum())
        self.nonzero += int((acts != 0).sum())
        self.samples += x.shape[0]
        self.counts += fire_counts(indices.cpu(), acts.cpu(), self.n_latents)

    def result(self) -> EvalMetrics:
        """FVU = err / (Σ‖x‖² − N‖x̄‖²), L0, dead fraction, mean cosine."""
        if self.samples == 0:
            return EvalMetrics(float("nan"), float("nan"), float("nan"), float("nan"), 0)
        mean = self.total / self.samples
        variance = self.sq - self.samples * float(mean.pow(2).sum())
        return EvalMetrics(self.err / max(variance, 1e-30), self.nonzero / self.samples,
                           dead_fraction(self.counts), self.cos / self.samples, self.samples)
