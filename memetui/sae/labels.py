"""Automatic text labels for SAE features, from two sources stored side by side in the checkpoint.

- `labels` (text tower): the text tower reads the feature's top exemplar images. With t_v the CLIP text
  embedding of vocabulary entry v and m_j the mean of feature j's top-10 exemplar image embeddings,
  label(j) = the top-3 entries by z_v = (t_v · m_j − μ_v) / σ_v, where μ_v and σ_v are the mean and
  standard deviation of t_v · x over the index's images (so words that match every image, or none,
  do not win). Without an index (no exemplars) the entries closest to the decoder direction,
  cos(t_v − t̄, W_dec[j]), stand in. The vocabulary is `<checkpoint stem>.vocab.txt` beside the
  model's checkpoint when there is one (the demo CLIP: the words it was trained on), else
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


def text_match_statistics(embeddings, rows: np.ndarray, vocab_embeddings: np.ndarray, sample: int = 16_384,
                          batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per vocabulary entry, mean and standard deviation of its text-image cosine over (an evenly strided
    sample of at most `sample` of) `rows` of `embeddings`."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if len(rows) > sample:
        rows = rows[np.linspace(0, len(rows) - 1, sample).astype(np.int64)]
    t = torch.as_tensor(np.asarray(vocab_embeddings, dtype=np.float32))
    total, squares = torch.zeros(t.shape[0], dtype=torch.float64), torch.zeros(t.shape[0], dtype=torch.float64)
    for start in range(0, len(rows), batch_size):
        x = F.normalize(torch.from_numpy(np.asarray(embeddings[rows[start:start + batch_size]], np.float32)), dim=1)
        sims = (x @ t.T).double()
        total += sims.sum(0)
        squares += (sims * sims).sum(0)
    count = max(len(rows), 1)
    mean = total / count
    std = (squares / count - mean * mean).clamp(min=1e-12).sqrt()
    return mean.float().numpy(), std.float().numpy()


def read_exemplars(exemplar_rows: Sequence[Sequence[int]], embeddings, vocab: Sequence[str],
                   vocab_embeddings: np.ndarray, statistics: tuple[np.ndarray, np.ndarray],
                   top: int = 3) -> list[list[str]]:
    """Per direction, the `top` vocabulary entries whose text embedding matches its exemplar images most,
    in standard deviations above the entry's mean match over the index (rows < 0 are padding)."""
    t = torch.as_tensor(np.asarray(vocab_embeddings, dtype=np.float32))
    if t.shape[0] != len(vocab):
        raise SAEError(f"vocabulary embeddings {tuple(t.shape)} do not fit {len(vocab)} entries")
    mean, std = (torch.as_tensor(a) for a in statistics)
    top = min(top, len(vocab))
    labels: list[list[str]] = []
    for start in range(0, len(exemplar_rows), 4096):
        chunk = [np.asarray(r, dtype=np.int64) for r in exemplar_rows[start:start + 4096]]
        chunk = [r[r >= 0] for r in chunk]
        centres = torch.zeros(len(chunk), t.shape[1])
        for i, rows in enumerate(chunk):
            if len(rows):
                x = torch.from_numpy(np.asarray(embeddings[np.sort(rows)], np.float32))
                centres[i] = F.normalize(x, dim=1).mean(0)
        best = ((centres @ t.T - mean) / std).topk(top, dim=1).indices
        labels.extend([[clean_label(vocab[i]) for i in row] if len(rows) else []
                       for row, rows in zip(best.tolist(), chunk)])
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


def label_sae(sae, embedder, vocab: Sequence[str] | None = None, top: int = 3, store=None, embeddings=None,
              rows: np.ndarray | None = None) -> list[list[str]]:
    """Label every latent of `sae` with `embedder.embed_texts` of the vocabulary (sets `sae.labels`) and,
    given the index `store`, with its exemplars' words (sets `sae.meta['exemplar_labels']`). Exemplars
    are searched among `rows` of `embeddings` (default: every live row of the store's memmap)."""
    source = "given"
    if vocab is None:
        file = vocabulary_file(getattr(getattr(embedder, "info", None), "pretrained", None))
        vocab, source = load_vocabulary(file), file.name
    vocab = list(vocab)
    if embedder.dim != sae.d:
        raise SAEError(f"text model dimension {embedder.dim} does not match the SAE's {sae.d}")
    embedded = embedder.embed_texts(vocab)
    if store is None:
        sae.labels = label_directions(sae.decoder_directions.cpu(), vocab, embedded, top)
        sae.meta["label_sources"] = {"labels": f"text tower by decoder direction, vocabulary {source} "
                                               f"({len(vocab)} entries)"}
        return sae.labels
    embeddings, rows = _searched_rows(store, embeddings, rows)
    top_rows = exemplar_rows(sae, store, embeddings=embeddings, rows=rows)
    sae.labels = read_exemplars(top_rows, embeddings, vocab, embedded,
                                text_match_statistics(embeddings, rows, embedded), top)
    sae.meta["exemplar_labels"] = exemplar_labels(sae, store, top, top_rows=top_rows)
    sae.meta["label_sources"] = {
        "labels": f"text tower reading the top-10 exemplars, vocabulary {source} ({len(vocab)} entries)",
        "exemplar_labels": "tf-idf words of the top-10 exemplars' captions, file names and OCR text"}
    return sae.labels


def exemplar_rows(sae, store, exemplars: int = 10, embeddings=None, rows: np.ndarray | None = None) -> np.ndarray:
    """[latents, exemplars] top-activating rows per latent (-1 pads latents that fire less), among `rows`
    of `embeddings` (default: every live row of `store`'s memmap)."""
    from .export import feature_stats

    if sae.d != store.dim:
        raise SAEError(f"SAE dimension {sae.d} does not match the index's {store.dim}")
    return feature_stats(sae, *_searched_rows(store, embeddings, rows), top=exemplars, low=1).top_rows


def _searched_rows(store, embeddings=None, rows: np.ndarray | None = None) -> tuple:
    """(embeddings, rows) exemplars are searched among: the given ones, by default `store`'s live rows."""
    return (store.embeddings if embeddings is None else embeddings,
            np.flatnonzero(store.live_mask()) if rows is None else rows)


def exemplar_labels(sae, store, top: int = 3, exemplars: int = 10, top_rows: np.ndarray | None = None
                    ) -> list[list[str]]:
    """Per latent, the `top` most distinctive words of its top-`exemplars` rows over all live rows of `store`."""
    from ..index.captions import row_documents
    from .words import document_frequencies, exemplar_words

    if top_rows is None:
        top_rows = exemplar_rows(sae, store, exemplars)
    doc_words, df = document_frequencies(row_documents(store))
    return [[clean_label(w) for w in found] for found in exemplar_words(top_rows, doc_words, df, top)]


def text_labeller(embedder, store, vocab: Sequence[str] | None = None, top: int = 3):
    """A function (directions [n, d], their exemplar rows) -> text-tower labels read from the exemplars of
    `store`, as `label_sae` does (vocabulary embedded and its index statistics computed once)."""
    if vocab is None:
        vocab = load_vocabulary(vocabulary_file(getattr(getattr(embedder, "info", None), "pretrained", None)))
    vocab = list(vocab)
    embedded = embedder.embed_texts(vocab)
    statistics = text_match_statistics(*_searched_rows(store), embedded)
    return lambda directions, rows: read_exemplars(rows, store.embeddings, vocab, embedded, statistics, top)
