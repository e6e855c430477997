"""Dead latents: samples since each latent last fired, judged against a fixed window of samples."""

from __future__ import annotations

import torch


class DeadTracker:
    """Samples since each latent last fired (and whether it ever fired) during training.

    A latent is dead for a window W when it has not fired in the last W samples; training uses a
    short window for AuxK and reports the fraction for a fixed window (Gao et al.: 10M samples;
    capped at the samples seen, so after one epoch "dead" means "never fired this epoch").
    """

    def __init__(self, n_latents: int, device):
        self.since = torch.zeros(n_latents, dtype=torch.int64, device=device)
        self.seen = 0

    def update(self, acts: torch.Tensor, indices: torch.Tensor) -> None:
        """Count a batch's code (acts/indices [B, k])."""
        self.since += acts.shape[0]
        self.seen += acts.shape[0]
        self.since[indices[acts > 0]] = 0

    def dead(self, window: int) -> torch.Tensor:
        """[n] bool: latents that did not fire in the last `window` samples (none before `window` are seen)."""
        return self.since >= window

    def dead_fraction(self, window: int) -> float:
        """Share of latents silent for the last min(window, samples seen) samples."""
        if self.seen == 0:
            return 0.0
        return float(self.dead(min(window, self.seen)).double().mean())
