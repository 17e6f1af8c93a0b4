"""The decision cache: bounded by size and age, keyed by policy revision and request.

A decision that depends on the clock is not cached: it may change without the request
changing. The cache is cleared whenever the policy is reloaded (the revision in the key
already keeps old answers from being served; clearing frees their memory).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

V = TypeVar("V")


class DecisionCache(Generic[V]):
    def __init__(self, maxsize: int = 100_000, ttl_seconds: float = 60.0):
        self.enabled = maxsize > 0 and ttl_seconds > 0
        self._entries: TTLCache[Hashable, V] = TTLCache(maxsize=max(maxsize, 1), ttl=max(ttl_seconds, 0.001))
        self._lock = threading.Lock()  # TTLCache is not thread-safe; workers' threads share it
        self.ttl_seconds = ttl_seconds
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        if not self.enabled:
            return None
        with self._lock:
            value = self._entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        if self.enabled:
            with self._lock:
                self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
