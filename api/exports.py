"""Whole-table and whole-group downloads kept as files, per snapshot version.

A published version never changes, so the encoded bytes of "every row of group G (or of all
groups) as format F" never change either. The first such download streams from the query
engine and writes the same bytes to a temporary file, which is renamed into place only when
complete; later downloads send the file (waitress' file wrapper: no re-encoding, near disk
speed, constant memory). A new current version can be warmed in the background, and folders of
versions that are no longer current are removed.

    <data_dir>/api/exports/v000123/features_volte.csv
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: Formats that are compressed already: no gzip copy.
NO_GZIP = (".parquet", ".xlsx")


class ExportCache:
    """Args:
        root: the cache folder (created on demand).
        max_bytes: stop adding files once the current version's files reach this size.
        gzip_too: also keep a gzip copy of each file (written in the background) for clients
            that accept gzip.
    """

    def __init__(self, root: Path, max_bytes: int, gzip_too: bool = True) -> None:
        self.root = root
        self.gzip_too = gzip_too
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._filling: set[Path] = set()
        self._current: int | None = None
        self._stop = threading.Event()
        self._warming: list[threading.Thread] = []

    def path(self, version: int, name: str) -> Path:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"not a plain file name: {name!r}")
        return self.root / f"v{version:06d}" / name

    def get(self, version: int, name: str) -> Path | None:
        p = self.path(version, name)
        return p if p.is_file() else None

    def _size(self, version: int) -> int:
        folder = self.root / f"v{version:06d}"
        if not folder.is_dir():
            return 0
        return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())

    def tee(self, version: int, name: str, chunks: Iterator[bytes]
            ) -> Generator[bytes, None, None]:
        """Yield `chunks` and keep a copy as the cached file (unless another request is filling
        it or the cache is full); a partial copy (client gone, error) is discarded."""
        target = self.path(version, name)
        with self._lock:
            if target in self._filling or self._size(version) >= self.max_bytes:
                yield from chunks
                return
            self._filling.add(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
        done = False
        try:
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    yield chunk
            done = True
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # release the query engine's stream at once, not at GC
                close()
            with self._lock:
                self._filling.discard(target)
            if done:
                os.replace(tmp, target)
                if self.gzip_too and not name.endswith(NO_GZIP):
                    threading.Thread(target=self._gzip, args=(target,), daemon=True,
                                     name="fmw-export-gzip").start()
            else:
                tmp.unlink(missing_ok=True)

    def _gzip(self, source: Path) -> None:
        """Write `<file>.gz` next to a cached file, so gzip clients get it without CPU work."""
        target = source.with_name(source.name + ".gz")
        tmp = source.with_name(f".{source.name}.gz.{os.getpid()}.tmp")
        try:
            with open(source, "rb") as src, open(tmp, "wb") as raw, \
                    gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
            os.replace(tmp, target)
        except OSError as exc:  # the folder was pruned meanwhile, or the disk is full
            tmp.unlink(missing_ok=True)
            log.warning("could not write %s: %s", target, exc)

    def fill(self, version: int, name: str, make: Callable[[], Iterator[bytes]]) -> bool:
        """Write the cached file now if it is missing (for warming); True when present."""
        if self.get(version, name) is not None:
            return True
        copying = self.tee(version, name, make())
        try:
            for _ in copying:
                if self._stop.is_set():  # closing: drop the partial copy, free the engine
                    break
        finally:
            copying.close()
        return self.get(version, name) is not None

    def close(self, timeout: float = 30.0) -> None:
        """Stop warming and wait for it (before the query engine it reads from closes)."""
        self._stop.set()
        with self._lock:
            threads, self._warming = self._warming, []
        for t in threads:
            t.join(timeout)

    def note_current(self, version: int, warm: Callable[[int], None] | None = None) -> None:
        """Called with the current version; on a change, drop older folders and warm."""
        with self._lock:
            if self._current == version:
                return
            self._current = version
        self._prune(keep=version)
        if warm is not None and not self._stop.is_set():
            t = threading.Thread(target=self._warm, args=(warm, version), daemon=True,
                                 name=f"fmw-export-warm-{version}")
            with self._lock:
                self._warming = [w for w in self._warming if w.is_alive()] + [t]
            t.start()

    def _warm(self, warm: Callable[[int], None], version: int) -> None:
        try:
            warm(version)
        except Exception:  # a failed warm-up only means the first download is slower
            log.exception("warming the download cache for v%06d failed", version)

    def _prune(self, keep: int) -> None:
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name != f"v{keep:06d}":
                # a file still being sent (Windows) cannot go yet: retried on the next change
                shutil.rmtree(folder, ignore_errors=True)
