"""The download cache: whole files only, partial copies dropped, warming stops on close."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from api.exports import ExportCache


class Source:
    """`n` chunks of bytes, optionally slow; records whether it was closed."""

    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.n, self.delay = n, delay
        self.sent = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()

    def chunks(self) -> Iterator[bytes]:
        try:
            for i in range(self.n):
                if self.delay:
                    time.sleep(self.delay)
                self.sent += 1
                yield f"{i:06d}\n".encode()
        finally:
            self.closed.set()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_a_complete_download_becomes_the_cached_file(tmp_path: Path) -> None:
    cache = ExportCache(tmp_path, max_bytes=1 << 20, gzip_too=False)
    body = b"".join(cache.tee(3, "features_all.csv", iter(Source(5))))
    assert body == b"".join(f"{i:06d}\n".encode() for i in range(5))
    assert cache.get(3, "features_all.csv") is not None
    assert cache.path(3, "features_all.csv").read_bytes() == body


def test_a_download_the_client_left_leaves_no_file(tmp_path: Path) -> None:
    cache = ExportCache(tmp_path, max_bytes=1 << 20, gzip_too=False)
    src = Source(100)
    copying = cache.tee(3, "features_all.csv", src.chunks())
    next(copying), next(copying)
    copying.close()  # the client went away
    assert src.closed.is_set()
    assert cache.get(3, "features_all.csv") is None
    assert leftovers(tmp_path) == []


def test_closing_stops_warming_and_drops_its_partial_copy(tmp_path: Path) -> None:
    cache = ExportCache(tmp_path, max_bytes=1 << 20, gzip_too=False)
    src = Source(10_000, delay=0.001)  # ten seconds if nothing stops it
    cache.note_current(7, warm=lambda v: cache.fill(v, "features_all.csv", src.chunks))
    deadline = time.monotonic() + 10
    while src.sent < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert src.sent >= 5
    t0 = time.monotonic()
    cache.close(timeout=10)
    assert time.monotonic() - t0 < 5
    assert src.closed.is_set() and src.sent < 10_000
    assert cache.get(7, "features_all.csv") is None
    assert leftovers(tmp_path) == []
    # after close nothing starts warming again
    cache.note_current(8, warm=lambda v: cache.fill(v, "features_all.csv", Source(3).chunks))
    time.sleep(0.1)
    assert cache.get(8, "features_all.csv") is None


def test_a_version_change_prunes_older_folders(tmp_path: Path) -> None:
    cache = ExportCache(tmp_path, max_bytes=1 << 20, gzip_too=False)
    cache.note_current(1)
    assert cache.fill(1, "features_all.csv", Source(2).chunks)
    cache.note_current(2)
    assert not (tmp_path / "v000001").exists()
    assert cache.get(2, "features_all.csv") is None
