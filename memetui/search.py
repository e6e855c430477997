"""Session: one index + its embedder (+ SAE, query state) behind one facade for the CLI and TUI."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import QueryError
from .index.ann import AnnSearcher
from .index.store import IndexStore
from .paths import resolve_index


@dataclass(frozen=True)
class SearchResult:
    """One ranked image."""

    rank: int
    row: int
    path: Path
    score: float


class Session:
    """Searches one index; embeds query terms with the index's own model (loaded lazily)."""

    def __init__(self, store: IndexStore, device: str | None = None, model: str | None = None,
                 pretrained: str | None = None):
        self.store = store
        self.device = device
        self._model_override = (model, pretrained) if model else None
        self._embedder = None
        self.ann = AnnSearcher(store)
        self.last_search_ms = 0.0
        self._text_vector = lru_cache(maxsize=512)(self._embed_text_uncached)

    @classmethod
    def open(cls, index: str | Path | None = None, **kwargs) -> "Session":
        """Open the index named by `index` (or the default index)."""
        return cls(IndexStore.open(resolve_index(index)), **kwargs)

    @property
    def embedder(self):
        """The CLIP embedder for query terms (loaded on first use; must match the index model)."""
        if self._embedder is None:
            from .embed import Embedder

            name, pretrained = self._model_override or (self.store.model.name, self.store.model.pretrained)
            embedder = Embedder(name, pretrained, device=self.device)
            self.store.model.check_compatible(embedder.info)
            self._embedder = embedder
        return self._embedder

    def text_vector(self, text: str) -> np.ndarray:
        """Unit embedding of a text (memoised)."""
        if not text.strip():
            raise QueryError("empty text term")
        return self._text_vector(text)

    def _embed_text_uncached(self, text: str) -> np.ndarray:
        vector = self.embedder.embed_texts([text])[0]
        vector.setflags(write=False)
        return vector

    def image_vector(self, image: int | str | Path) -> np.ndarray:
        """Unit embedding of an indexed row, or of an image file (embedded on the fly)."""
        if isinstance(image, (int, np.integer)):
            if not 0 <= int(image) < self.store.count:
                raise QueryError(f"row {image} is not in the index (0..{self.store.count - 1})")
            return np.asarray(self.store.embeddings[int(image)], dtype=np.float32)
        path = Path(image).expanduser()
        if not path.is_file():
            raise QueryError(f"image not found: {path}")
        return self.embedder.embed_images([path])[0]

    def search(self, vector: np.ndarray, k: int = 20) -> list[SearchResult]:
        """Top-k images by dot product with `vector`."""
        started = time.perf_counter()
        hits = self.ann.search(vector, k)
        paths = self.store.paths(hits.rows)
        self.last_search_ms = (time.perf_counter() - started) * 1000
        return [
            SearchResult(rank, int(row), path, float(score))
            for rank, (row, path, score) in enumerate(zip(hits.rows, paths, hits.scores), 1)
        ]
