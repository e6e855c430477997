"""Automatic text labels for SAE features: the vocabulary entries closest to each decoder direction.

label(j) = top-3 vocabulary entries v by cos(v − v̄, W_dec[j]), with v the CLIP text embedding of an
entry and v̄ the vocabulary's mean embedding (removed so that generic words do not win everywhere).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SAEError
from ..paths import PACKAGE_ROOT

VOCAB_FILE = PACKAGE_ROOT / "memetui" / "data" / "vocab.txt"


def clean_label(text: str, limit: int = 80) -> str:
    """Printable text only: control/format characters dropped, whitespace collapsed, length capped."""
    kept = "".join(" " if ch.isspace() else ch for ch in str(text)
                   if ch.isspace() or unicodedata.category(ch)[0] != "C")
    return " ".join(kept.split())[:limit]


def load_vocabulary(path: str | Path | None = None) -> list[str]:
    """Entries of a vocabulary file (one per line; blanks and '#' comments skipped; de-duplicated)."""
    path = Path(path) if path else VOCAB_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SAEError(f"cannot read vocabulary {path}: {exc}") from None
    entries = dict.fromkeys(clean_label(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    entries.pop("", None)
    if not entries:
        raise SAEError(f"vocabulary {path} is empty")
    return list(entries)


def label_directions(directions: torch.Tensor | np.ndarray, vocab: Sequence[str], vocab_embeddings: np.ndarray,
                     top: int = 3, remove_mean: bool = True) -> list[list[str]]:
    """Top-`top` vocabulary entries per direction ([n, d] directions, [m, d] unit text embeddings)."""
    v = torch.as_tensor(np.asarray(vocab_embeddings, dtype=np.float32))
    w = F.normalize(torch.as_tensor(np.asarray(directions, dtype=np.float32)), dim=1)
    if v.shape[0] != len(vocab) or v.shape[1] != w.shape[1]:
        raise SAEError(f"vocabulary embeddings {tuple(v.shape)} do not fit {len(vocab)} entries of dim {w.shape[1]}")
    if remove_mean and v.shape[0] > 1:
        v = v - v.mean(0)
    v = F.normalize(v, dim=1)
    top = min(top, len(vocab))
    labels: list[list[str]] = []
    for start in range(0, w.shape[0], 4096):
        best = (w[start:start + 4096] @ v.T).topk(top, dim=1).indices
        labels.extend([[clean_label(vocab[i]) for i in row] for row in best.tolist()])
    return labels


def label_sae(sae, embedder, vocab: Sequence[str] | None = None, top: int = 3) -> list[list[str]]:
    """Label every latent of `sae` with `embedder.embed_texts` of the vocabulary; sets `sae.labels`."""
    vocab = list(vocab) if vocab is not None else load_vocabulary()
    if embedder.dim != sae.d:
        raise SAEError(f"text model dimension {embedder.dim} does not match the SAE's {sae.d}")
    sae.labels = label_directions(sae.decoder_directions.cpu(), vocab, embedder.embed_texts(vocab), top)
    return sae.labels
