"""Training data for SAEs: an [N, d] array (index embeddings, a .npy file or memory), split by row hash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import SAEError


class Split(NamedTuple):
    """Row numbers of the training and validation splits."""

    train: np.ndarray
    val: np.ndarray


def row_hash(rows: np.ndarray) -> np.ndarray:
    """splitmix64 of row numbers (uint64): a fixed pseudo-random value per row."""
    z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_rows(rows: np.ndarray, val_fraction: float) -> Split:
    """Split(train, val): a row is held out iff its hash falls below val_fraction (no leak)."""
    held = (row_hash(rows) >> np.uint64(11)).astype(np.float64) / float(1 << 53) < val_fraction
    return Split(rows[~held], rows[held])


class RowArray:
    """Some rows of an [N, d] matrix held in memory, indexed by their row numbers in the full matrix."""

    def __init__(self, rows: np.ndarray, vectors: np.ndarray, total: int):
        """`rows` sorted row numbers, `vectors` [len(rows), d] their vectors, `total` the full matrix's N."""
        self.rows, self.vectors = np.asarray(rows, dtype=np.int64), vectors
        self.shape, self.dtype, self.ndim = (int(total), int(vectors.shape[1])), vectors.dtype, 2

    def __getitem__(self, rows) -> np.ndarray:
        """Vectors of the given row numbers (each must be one of `self.rows`)."""
        wanted = np.asarray(rows, dtype=np.int64)
        at = np.searchsorted(self.rows, wanted).clip(max=max(len(self.rows) - 1, 0))
        if len(self.rows) == 0 or not np.array_equal(self.rows[at], wanted):
            raise IndexError("row not held in this sample")
        return self.vectors[at]


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

    @property
    def all_rows(self) -> np.ndarray:
        """Every usable row (train and validation), sorted."""
        return np.sort(np.concatenate([self.train_rows, self.val_rows]))

    def batch(self, rows: np.ndarray) -> torch.Tensor:
        """float32 [len(rows), d] tensor of the given rows (read in sorted order for locality)."""
        return torch.from_numpy(np.asarray(self.array[np.sort(rows)], dtype=np.float32))


def open_training_data(source, val_fraction: float = 0.1, remote_sample: int = 1_000_000) -> EmbeddingData:
    """An index folder / IndexStore (live rows only), a .npy path ([N, d]) or an in-memory array.

    An index whose vectors are in Milvus and not in a local memmap gives an evenly spread sample of
    at most `remote_sample` live rows streamed out of the collection."""
    from ..index.store import IndexStore

    store = None
    if isinstance(source, IndexStore):
        store = source
    elif isinstance(source, (str, Path)) and Path(source).suffix != ".npy":
        store = IndexStore.open(source)
    if store is not None and store.vectors_only_in_milvus():
        from ..index.milvus_ann import stream_rows

        rows = np.flatnonzero(store.live_mask())
        if len(rows) > remote_sample:
            rows = rows[np.linspace(0, len(rows) - 1, remote_sample).astype(np.int64)]
        array = RowArray(rows, stream_rows(store, rows), store.count)
        name = f"{store.path} ({len(rows):,} rows streamed from Milvus at {store.manifest.ann['uri']})"
    elif store is not None:
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
