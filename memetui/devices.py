"""Choose the torch device (cuda > mps > cpu, or the user's `--device`) and a matching dtype."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:  # torch is imported lazily: start-up time matters for the TUI.
    import torch


def pick_device(requested: str | None = None) -> "torch.device":
    """Return the requested torch device, or the best available one (cuda > mps > cpu)."""
    import torch

    if requested and requested != "auto":
        try:
            device = torch.device(requested)
        except RuntimeError as exc:
            raise UsageError(f"unknown device {requested!r}: {exc}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"device {requested!r} requested but CUDA is not available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise UsageError(f"device {requested!r} requested but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
