"""Retention: which old versions and leftovers of dead writers to remove, and removing them.

Both decisions are pure functions over what is on disk (`plan_retention`, `plan_tmp_cleanup`);
`retire` and `remove_tmp` carry them out. Nothing here raises for a file that cannot be deleted
(on Windows: a reader holds it open): it is reported and the next publish tries again.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lake.layout import (
    POINTER,
    TRASH_PREFIX,
    Layout,
    SnapshotError,
    parse_work_name,
    version_name,
)
from lake.manifest import load_manifest

log = logging.getLogger(__name__)

#: A tmp/ folder older than this is abandoned even if a process with its pid is alive (the pid
#: may have been reused); a publish takes seconds.
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[int, ...]
    delete: tuple[int, ...]


def plan_retention(created: Mapping[int, datetime], current: int | None, keep: int,
                   grace_hours: float, now: datetime) -> RetentionPlan:
    """Keep the `keep` newest versions, those younger than `grace_hours`, and `current`.

    Versions newer than `current` are kept too: they are being made current by another
    publisher right now (the pointer only moves forward), or an operator moved the pointer back.
    """
    newest = set(sorted(created, reverse=True)[:max(keep, 1)])
    young = {v for v, t in created.items() if now - t < timedelta(hours=grace_hours)}
    kept = newest | young
    if current is not None:
        kept |= {v for v in created if v >= current}
    return RetentionPlan(tuple(sorted(v for v in created if v in kept)),
                         tuple(sorted(v for v in created if v not in kept)))


def version_times(layout: Layout) -> dict[int, datetime]:
    """Published versions and when they were created (the manifest's time, else the folder's)."""
    out = {}
    for v in layout.versions():
        try:
            out[v] = datetime.fromisoformat(load_manifest(layout.version_dir(v)).created_at)
        except (SnapshotError, ValueError):
            out[v] = datetime.fromtimestamp(layout.version_dir(v).stat().st_mtime, UTC)
    return out


@dataclass(frozen=True)
class Removal:
    """What a removal did: versions/entries gone, and those that failed with why."""

    removed: tuple[int, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)


def retire(layout: Layout, versions: tuple[int, ...], token: str) -> Removal:
    """Move each version out of versions/ in one rename, then delete it.

    The rename is what makes a version disappear for readers, whole; if it fails (a file in
    it is open on Windows) the version stays intact and is retried at the next publish. If the
    delete after the rename fails, the leftover in tmp/ is removed by the next publish.
    """
    removed, failed = [], {}
    for v in versions:
        src = layout.version_dir(v)
        trash = layout.tmp_dir / f"{TRASH_PREFIX}{version_name(v)}.{token}"
        try:
            layout.tmp_dir.mkdir(parents=True, exist_ok=True)
            os.rename(src, trash)
        except FileNotFoundError:
            removed.append(v)  # another publisher retired it first
            continue
        except OSError as exc:
            failed[version_name(v)] = str(exc)
            log.warning("could not retire snapshot %s (retried at the next publish): %s",
                        version_name(v), exc)
            continue
        removed.append(v)
        _rmtree(trash, failed)
    return Removal(tuple(removed), failed)


@dataclass(frozen=True)
class TmpEntry:
    """A leftover candidate: a name in tmp/ (or a pointer temp file in the root) and its age."""

    name: str
    modified: datetime
    in_root: bool = False


def plan_tmp_cleanup(entries: list[TmpEntry], now: datetime,
                     alive: Callable[[int], bool]) -> list[TmpEntry]:
    """Entries to remove (pure): trash; writers' folders whose process is gone or that are stale."""
    out = []
    for e in entries:
        if e.in_root:  # .CURRENT.json.<pid>.tmp left by a writer killed while switching
            pid = e.name.split(".")[-2]
            if not pid.isdigit() or not alive(int(pid)) or now - e.modified > STALE_AFTER:
                out.append(e)
        elif e.name.startswith(TRASH_PREFIX):
            out.append(e)
        elif (parsed := parse_work_name(e.name)) is not None:
            if not alive(parsed[1]) or now - e.modified > STALE_AFTER:
                out.append(e)
    return out


def tmp_entries(layout: Layout) -> list[TmpEntry]:
    """What `plan_tmp_cleanup` looks at."""
    out = []
    if layout.tmp_dir.is_dir():
        for p in layout.tmp_dir.iterdir():
            out.append(TmpEntry(p.name, _mtime(p)))
    if layout.root.is_dir():
        for p in layout.root.glob(f".{POINTER}.*.tmp"):
            out.append(TmpEntry(p.name, _mtime(p), in_root=True))
    return out


def remove_tmp(layout: Layout, entries: list[TmpEntry]) -> Removal:
    """Delete planned leftovers; returns the versions of removed writer folders."""
    abandoned, failed = [], {}
    for e in entries:
        path = (layout.root if e.in_root else layout.tmp_dir) / e.name
        if e.in_root or path.is_file():
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                failed[e.name] = str(exc)
            continue
        if _rmtree(path, failed) and (parsed := parse_work_name(e.name)) is not None:
            abandoned.append(parsed[0])
    return Removal(tuple(sorted(abandoned)), failed)


def _rmtree(path: Path, failed: dict[str, str]) -> bool:
    try:
        shutil.rmtree(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as exc:
        failed[path.name] = str(exc)
        log.warning("could not delete %s (retried at the next publish): %s", path, exc)
        return False


def _mtime(p: Path) -> datetime:
    try:
        return datetime.fromtimestamp(p.stat().st_mtime, UTC)
    except OSError:
        return datetime.now(UTC)

