"""TermVectors: the unit vector of each query term, and of whole queries, cached.

Text embeddings are also kept across runs (memetui.text_cache, keyed by the model's sha256), so a
text seen before costs neither the torch/open_clip import nor the model load.

Text and image-file terms are embedded with the index's CLIP model, loaded on first use (one
load, one embedding at a time: the model sits behind a lock); index rows come from the
memory-mapped embeddings; directions from the providers.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError, QueryError
from .. import text_cache
from ..lru import LRUCache
from ..steer.query import Query, Term
from .directions import Directions

TEXT_CACHE = 512
QUERY_CACHE = 256


class TermVectors:
    """Resolves terms to unit vectors ([d] float32, read-only) and queries to q = Σ wᵢ eᵢ."""

    def __init__(self, store, directions: Directions, device: str | None = None,
                 model: tuple[str, str | None] | None = None):
        """`model`: (name, pretrained) to embed queries with instead of the index's own."""
        self._store = store
        self._directions = directions
        self._device = device
        self._model = model or (store.model.name, store.model.pretrained)
        self._embedder = None
        self._unavailable: QueryError | None = None
        """Why the model cannot be loaded, once that is known (asked again, the answer is instant)."""
        self._embed_lock = threading.RLock()
        self._texts: LRUCache[str, np.ndarray] = LRUCache(TEXT_CACHE)
        self._files: LRUCache[str, np.ndarray] = LRUCache(TEXT_CACHE)
        self._queries: LRUCache[Query, np.ndarray] = LRUCache(QUERY_CACHE)

    # -- the model -------------------------------------------------------------------------------
    @property
    def embedder(self):
        """The CLIP embedder for query terms (loaded on first use; must match the index model)."""
        with self._embed_lock:
            if self._embedder is None:
                if self._unavailable is not None:
                    raise self._unavailable
                from ..embed import Embedder

                try:
                    embedder = Embedder(*self._model, device=self._device)
                except ModelLoadError as exc:  # e.g. imported embeddings whose model is not on this machine
                    self._unavailable = QueryError(
                        f"text and image-file queries need the index's model, which cannot be loaded here ({exc}); "
                        "images of the index as queries and steering still work")
                    raise self._unavailable from None
                self._store.model.check_compatible(embedder.info)
                self._embedder = embedder
            return self._embedder

    @property
    def device_label(self) -> str | None:
        """The device the model runs on once loaded, else None."""
        return None if self._embedder is None else str(self._embedder.device)

    # -- vectors ---------------------------------------------------------------------------------
    def query_vector(self, query: Query) -> np.ndarray:
        """q = Σ wᵢ eᵢ (float32 [d], read-only), cached per query state (undo is a cache hit)."""
        cached = self._queries.get(query)
        if cached is None:
            cached = query.vector(self)
            cached.setflags(write=False)
            self._queries.put(query, cached)
        return cached

    def term_vector(self, term: Term) -> np.ndarray:
        """Unit vector of a term: CLIP text/image embedding, index row, or direction."""
        if term.kind in ("text", "ocr"):  # text in the image: CLIP reads it a little, OCR the rest
            return self.text_vector(term.value)
        if term.kind == "image":
            return self.image_vector(term.value)
        return self._directions.provider(term.value.provider).vector(term.value.id)

    def text_vector(self, text: str) -> np.ndarray:
        """Unit CLIP embedding of a text (memoised)."""
        if not text.strip():
            raise QueryError("empty text term")
        cached = self._texts.get(text)
        if cached is None:
            model_sha = self._store.model.sha256
            cached = text_cache.get(model_sha, text)  # any model used here has the index's sha256
            if cached is None or cached.shape[0] != self._store.dim:
                with self._embed_lock:
                    cached = self.embedder.embed_texts([text])[0]
                text_cache.put(model_sha, text, cached)
            cached.setflags(write=False)
            self._texts.put(text, cached)
        return cached

    def prefetch_texts(self, texts: list[str], batch_size: int = 256) -> None:
        """Embed the texts not cached yet in batches (one model call per batch instead of one per text)."""
        todo = [t for t in dict.fromkeys(texts) if t.strip() and self._texts.get(t) is None
                and text_cache.get(self._store.model.sha256, t) is None]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            with self._embed_lock:
                vectors = self.embedder.embed_texts(chunk)
            for text, vector in zip(chunk, vectors):
                text_cache.put(self._store.model.sha256, text, vector)

    def image_vector(self, image: int | str | Path) -> np.ndarray:
        """Unit embedding of an indexed row, or of an image file (embedded on the fly, memoised)."""
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            if not 0 <= int(image) < self._store.count:
                raise QueryError(f"row {image} is not in the index (0..{self._store.count - 1})")
            return np.asarray(self._store.embeddings[int(image)], dtype=np.float32)
        path = Path(image).expanduser()
        key = str(path.resolve()) if path.exists() else str(path)
        cached = self._files.get(key)
        if cached is None:
            if not path.is_file():
                raise QueryError(f"image not found: {path}")
            with self._embed_lock:
                cached = self.embedder.embed_images([path])[0]
            cached.setflags(write=False)
            self._files.put(key, cached)
        return cached
