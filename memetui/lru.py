"""LRUCache: a small thread-safe least-recently-used map (query vectors, results, thumbnails)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most `capacity` entries; `get` refreshes an entry, `put` evicts the oldest.

    Every method holds one lock, so the UI thread and workers may share a cache. `on_evict(key,
    value)` runs (under the lock) for each entry pushed out by `put`.
    """

    def __init__(self, capacity: int, on_evict: Callable[[K, V], None] | None = None):
        if capacity < 1:
            raise ValueError("LRUCache capacity must be >= 1")
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for `key` (now the newest entry), else `default`."""
        with self._lock:
            try:
                self._data.move_to_end(key)
            except KeyError:
                return default
            return self._data[key]

    def peek(self, key: K, default: V | None = None) -> V | None:
        """The value for `key` without refreshing it."""
        with self._lock:
            return self._data.get(key, default)

    def put(self, key: K, value: V) -> V:
        """Store `value` as the newest entry; returns it."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                old_key, old_value = self._data.popitem(last=False)
                if self._on_evict is not None:
                    self._on_evict(old_key, old_value)
        return value

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The cached value, or `compute()` stored (computed outside the lock; a race stores twice)."""
        value = self.get(key)
        if value is None:
            value = self.put(key, compute())
        return value

    def clear(self) -> None:
        """Drop every entry (no eviction callbacks)."""
        with self._lock:
            self._data.clear()
