"""Dead latents: samples since each latent last fired, judged against a fixed window of samples."""

from __future__ import annotations

from typing import NamedTuple

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
        fired = torch.bincount(indices.reshape(-1), weights=(acts.reshape(-1) > 0).float(), minlength=len(self.since))
        self.since.masked_fill_(fired > 0, 0)  # no boolean-mask gather: half the time of since[indices[acts > 0]] = 0

    def dead(self, window: int) -> torch.Tensor:
        """[n] bool: latents that did not fire in the last `window` samples (none before `window` are seen)."""
        return self.since >= window

    def dead_fraction(self, window: int) -> float:
        """Share of latents silent for the last min(window, samples seen) samples."""
        if self.seen == 0:
            return 0.0
        return float(self.dead(min(window, self.seen)).double().mean())


class DeadCounts(NamedTuple):
    """Latents that fire on no row of a split (fractions of all latents) and the rows read."""

    train: float
    val: float
    all: float
    train_rows: int
    val_rows: int


def dead_by_split(sae, store) -> DeadCounts:
    """Shares of `sae`'s latents that fire on no training row, no validation row and no live row of `store`
    (the split the SAE was trained with: its `val_fraction`, row hashes as in training)."""
    import numpy as np

    from .data import split_rows
    from .export import feature_stats

    live = np.flatnonzero(store.live_mask())
    val_fraction = float((sae.meta.get("training") or {}).get("val_fraction", 0.1))
    split = split_rows(live, val_fraction)
    fired = {}
    for name, rows in (("train", split.train), ("val", split.val)):
        fired[name] = feature_stats(sae, store.embeddings, rows, top=1, low=1).rate > 0 if len(rows) else \
            np.zeros(sae.n_latents, bool)
    return DeadCounts(float((~fired["train"]).mean()), float((~fired["val"]).mean()),
                      float((~(fired["train"] | fired["val"])).mean()), len(split.train), len(split.val))
