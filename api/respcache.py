"""Small v1 responses kept in memory, keyed by their ETag (snapshot version + normalised query).

A version never changes, so a cached page is exactly what the engine would compute again; the
cache is a bounded LRU (total bytes and bytes per entry). A request with ``Cache-Control:
no-cache`` (or ``no-store``) is answered from the engine.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedPage:
    body: bytes
    total: int | None
    link: str | None


class ResponseCache:
    def __init__(self, max_bytes: int, max_entry: int = 512 * 1024) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self._lock = threading.Lock()
        self._items: OrderedDict[str, CachedPage] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedPage | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: str, page: CachedPage) -> None:
        size = len(page.body)
        if size > self.max_entry or self.max_bytes <= 0:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._items[key] = page
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.body)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._items), "bytes": self._bytes, "hits": self.hits,
                    "misses": self.misses}
