"""Automatic text labels for SAE features, from two sources stored side by side in the checkpoint.

- `labels` (text tower): label(j) = top-3 vocabulary entries v by cos(v − v̄, W_dec[j]), with v the
  CLIP text embedding of an entry and v̄ the vocabulary's mean embedding (removed so that generic
  words do not win everywhere). The vocabulary is `<checkpoint stem>.vocab.txt` beside the model's
  checkpoint when there is one (the demo CLIP: the words it was trained on), else
  memetui/data/vocab.txt (general English nouns, for real CLIPs);
- `exemplar_labels`: the most distinctive words (tf-idf, memetui.sae.words) of the feature's top-10
  exemplars over the whole index: captions, folder and file names and text in the image (OCR).
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


def vocabulary_file(pretrained: str | None) -> Path:
    """`<checkpoint stem>.vocab.txt` beside the local checkpoint `pretrained` when it exists, else VOCAB_FILE."""
    from ..embed import resolve_checkpoint
    from ..errors import ModelLoadError

    try:
        checkpoint = resolve_checkpoint(pretrained)
    except ModelLoadError:
        checkpoint = None
    if checkpoint is not None:
        beside = checkpoint.with_name(checkpoint.name.split(".")[0] + ".vocab.txt")
        if beside.is_file():
            return beside
    return VOCAB_FILE


def label_sae(sae, embedder, vocab: Sequence[str] | None = None, top: int = 3, store=None) -> list[list[str]]:
    """Label every latent of `sae` with `embedder.embed_texts` of the vocabulary (sets `sae.labels`) and,
    given the index `store`, with its exemplars' words (sets `sae.meta['exemplar_labels']`)."""
    source = "given"
    if vocab is None:
        file = vocabulary_file(getattr(getattr(embedder, "info", None), "pretrained", None))
        vocab, source = load_vocabulary(file), file.name
    vocab = list(vocab)
    if embedder.dim != sae.d:
        raise SAEError(f"text model dimension {embedder.dim} does not match the SAE's {sae.d}")
    sae.labels = label_directions(sae.decoder_directions.cpu(), vocab, embedder.embed_texts(vocab), top)
    sources = {"labels": f"text tower, vocabulary {source} ({len(vocab)} entries)"}
    if store is not None:
        sae.meta["exemplar_labels"] = exemplar_labels(sae, store, top)
        sources["exemplar_labels"] = "tf-idf words of the top-10 exemplars' captions, file names and OCR text"
    sae.meta["label_sources"] = sources
    return sae.labels


def exemplar_labels(sae, store, top: int = 3, exemplars: int = 10) -> list[list[str]]:
    """Per latent, the `top` most distinctive words of its top-`exemplars` rows over all live rows of `store`."""
    from ..index.captions import row_documents
    from .export import feature_stats
    from .words import document_frequencies, exemplar_words

    if sae.d != store.dim:
        raise SAEError(f"SAE dimension {sae.d} does not match the index's {store.dim}")
    stats = feature_stats(sae, store.embeddings, np.flatnonzero(store.live_mask()), top=exemplars, low=1)
    doc_words, df = document_frequencies(row_documents(store))
    return [[clean_label(w) for w in found] for found in exemplar_words(stats.top_rows, doc_words, df, top)]


def text_labeller(embedder, vocab: Sequence[str] | None = None, top: int = 3):
    """A function [n, d] directions -> their text-tower labels (vocabulary embedded once, as `label_sae` does)."""
    if vocab is None:
        vocab = load_vocabulary(vocabulary_file(getattr(getattr(embedder, "info", None), "pretrained", None)))
    vocab = list(vocab)
    embedded = embedder.embed_texts(vocab)
    return lambda directions: label_directions(directions, vocab, embedded, top)
