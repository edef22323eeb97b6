"""File-system steps of a publish that must be durable and survive Windows' file sharing rules."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lake.layout import SnapshotError

T = TypeVar("T")

#: A rename or replace that hits a file another process holds open (Windows sharing violation,
#: a virus scanner, the search indexer) is retried this often, with a growing pause.
ATTEMPTS = 20
DELAY_S = 0.05


def fsync_file(path: Path) -> None:
    """Flush a written file to disk (a read-write handle: Windows refuses fsync on read-only)."""
    with open(path, "r+b") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (new names, renames) to disk where the OS allows it.

    Windows cannot open a folder for fsync; NTFS journals the metadata, so it is skipped there.
    """
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (network shares) do not support it for folders
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes) -> None:
    """Create `path` with `data` and fsync it (for files inside a not yet visible folder)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def with_retries(action: Callable[[], T], what: str, *, attempts: int | None = None,
                 delay_s: float | None = None) -> T:
    """Run `action`, retrying while the OS says a file is in use (PermissionError).

    Raises:
        SnapshotError: still refused after `attempts` tries, naming `what`.
    """
    attempts = ATTEMPTS if attempts is None else attempts
    delay_s = DELAY_S if delay_s is None else delay_s
    last: OSError | None = None
    for i in range(attempts):
        try:
            return action()
        except PermissionError as exc:
            last = exc
            time.sleep(delay_s * (i + 1))
    raise SnapshotError(f"could not {what} after {attempts} attempts: {last}")
