"""Training curve as a PNG, drawn with matplotlib's object API (no pyplot, no global backend)."""

from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], target: Path) -> None:
    """Train/validation FVU (log scale) and dead fraction against samples seen, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..atomic import atomic_path

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    samples = [h["samples"] for h in history]
    ax1.plot(samples, [h["fvu"] for h in history], label="train FVU (batch)", lw=1)
    val = [(h["samples"], h["val_fvu"]) for h in history if "val_fvu" in h]
    if val:
        ax1.plot(*zip(*val), "o-", label="validation FVU")
    ax1.set_yscale("log")
    ax1.set_xlabel("samples")
    ax1.legend()
    ax2.plot(samples, [h["dead_fraction"] for h in history], label="dead (training window)")
    val_dead = [(h["samples"], h["val_dead_fraction"]) for h in history if "val_dead_fraction" in h]
    if val_dead:
        ax2.plot(*zip(*val_dead), "o-", label="dead (validation pass)")
    ax2.set_xlabel("samples")
    ax2.legend()
    fig.tight_layout()
    with atomic_path(Path(target)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
