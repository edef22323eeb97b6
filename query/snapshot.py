"""Which snapshot version a read uses: CURRENT.json, a pinned version, or the one valid on a date.

Versions are immutable, so a version's manifest and checksum verdict are cached; the pointer is
re-read only when its file changes (stat: mtime, size, inode), which makes resolving "current"
at the start of every query cheap and picks up a new publish without a restart.

Published files can still be damaged later (a disk, a person, a virus scanner). Two things
re-check a version that passed: a read that fails (`Resolver.read_failed`: the version is
verified again, at most every `reverify_gap_s` while it keeps passing) and a periodic check
(`Resolver.reverify`, run by the API's `api.snapshot_watch`). A version found damaged is
skipped from then on: readers fall back to the newest good older one, as they do for a version
damaged before its first use, and for a missing or unreadable CURRENT.json (the newest good
version). Every change in what readers get is reported to the resolver's listener.
"""

from __future__ import annotations

import logging
import os
import threading
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from lake.layout import MANIFEST, PARTITION_COLUMN, TABLES, Layout, SnapshotError, version_name
from lake.manifest import Manifest, load_manifest, verify
from query.errors import CorruptSnapshot, NoSnapshot, UnknownGroup, UnknownTable, UnknownVersion

log = logging.getLogger(__name__)

#: A read error re-verifies a version that keeps passing its check at most this often: a query
#: failing for another reason must not hash the whole version on every request.
REVERIFY_GAP_S = 60.0
_NO_POINTER = (-1, -1, -1)  # the stat key of a missing CURRENT.json


@dataclass(frozen=True)
class Fallback:
    """CURRENT.json named `requested` (None: it is missing or unreadable), but that failed, so
    `used` is read instead."""

    requested: int | None
    used: int
    problems: tuple[str, ...]

    @property
    def message(self) -> str:
        if self.requested is None:
            return f"{'; '.join(self.problems)}; serving {version_name(self.used)}"
        return (f"snapshot {version_name(self.requested)} is damaged "
                f"({'; '.join(self.problems)}); serving {version_name(self.used)}")


class SnapshotReadError(CorruptSnapshot):
    """Reading a version failed and a fresh check found it damaged: the next resolve of the
    current version skips it, so a request that did not name its version can be answered
    again (from the fallback)."""


class NoGoodVersion(NoSnapshot):
    """Versions were published, but none passes its checks (`problems` says what failed)."""


EventKind = Literal["fallback", "unavailable", "normal"]


@dataclass(frozen=True)
class SnapshotEvent:
    """What readers of "current" get has changed: an older version instead of the pointer's
    (`fallback`), no version at all (`unavailable`), or the pointer's version again (`normal`)."""

    kind: EventKind
    version: int | None
    detail: str

    @property
    def name(self) -> str | None:
        return version_name(self.version) if self.version is not None else None


@dataclass(frozen=True)
class Snapshot:
    """One verified, published version."""

    version: int
    path: Path
    manifest: Manifest
    fallback: Fallback | None = None

    @property
    def name(self) -> str:
        return version_name(self.version)

    @property
    def created_at(self) -> str:
        return self.manifest.created_at

    def groups(self) -> dict[str, int]:
        """Rows per feature group, by group name."""
        info = self.manifest.tables.get("features")
        return dict(sorted(info.groups.items())) if info else {}

    def files(self, table: str, group: str | None = None) -> list[str]:
        """Absolute paths of the table's Parquet files (one group's only, when given), sorted.

        Raises:
            UnknownTable, UnknownGroup.
        """
        if table not in TABLES:
            raise UnknownTable(table, TABLES)
        prefix = f"{table}/"
        if group is not None:
            if table != "features":
                raise UnknownTable(table, ["features"])
            if group not in self.groups():
                raise UnknownGroup(group, self.groups(), version=self.version)
            prefix = f"features/{PARTITION_COLUMN}={group}/"
        rels = [rel for rel in self.manifest.files
                if rel.startswith(prefix) and rel.endswith(".parquet")]
        return [str(self.path / rel) for rel in sorted(rels, key=_file_order)]


def _file_order(rel: str) -> tuple[str, int, str]:
    """(group, part number, path): group by group name as text, parts numerically."""
    parts = rel.split("/")
    group = parts[1].partition("=")[2] if len(parts) > 2 else ""
    stem = parts[-1].removesuffix(".parquet")
    number = stem.rpartition("-")[2]
    return group, int(number) if number.isdigit() else -1, rel


def _as_of_cutoff(as_of: date | datetime) -> datetime:
    """The instant a version must have been created before: a date means its whole day (UTC)."""
    if isinstance(as_of, datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    if as_of >= date.max:  # the end of the last day there is: after every version
        return datetime.max.replace(tzinfo=UTC)
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=UTC) - timedelta.resolution


def _created(m: Manifest) -> datetime:
    ts = datetime.fromisoformat(m.created_at)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class Resolver:
    """Resolves and verifies snapshot versions under one snapshots folder (thread-safe).

    Args:
        check: verify a version (every file's size and sha256) before its first use.
        listener: called with each `SnapshotEvent`, under the resolver's lock: it must be quick
            and must not call the resolver (record it, wake a thread).
        reverify_gap_s: see `read_failed`.
    """

    def __init__(self, root: Path, *, check: bool = True,
                 listener: Callable[[SnapshotEvent], None] | None = None,
                 reverify_gap_s: float = REVERIFY_GAP_S) -> None:
        self.layout = Layout(root)
        self.check = check
        self.listener = listener
        self.reverify_gap_s = reverify_gap_s
        self._lock = threading.Lock()
        self._recheck_lock = threading.Lock()
        self._pointer_key: tuple[int, int, int] | None = None
        self._current: Snapshot | None = None
        self._manifests: dict[int, Manifest] = {}
        self._problems: dict[int, tuple[str, ...]] = {}
        self._error_checked: dict[int, float] = {}
        self._serving: tuple[int | None, Fallback | None] | None = None

    def versions(self) -> list[int]:
        """Published versions, oldest first."""
        return self.layout.versions()

    def current(self) -> Snapshot:
        """The version CURRENT.json names, or the newest good older one if it is damaged (the
        newest good one if CURRENT.json is missing or unreadable).

        Raises:
            NoSnapshot: nothing published, or no version passes its checks.
        """
        try:
            st = os.stat(self.layout.pointer)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = _NO_POINTER
        with self._lock:
            if key == self._pointer_key and self._current is not None:
                return self._current
            try:
                wanted = self.layout.read_pointer() if key != _NO_POINTER else None
                missing = f"{self.layout.pointer.name} is missing"
            except SnapshotError as exc:
                wanted, missing = None, str(exc)
            try:
                snap = self._with_fallback(wanted, missing)
            except NoSnapshot as exc:
                if self.versions():  # nothing published yet is not news
                    self._note(None, None, "; ".join(exc.problems))
                raise
            self._note(snap.version, snap.fallback, "")
            self._pointer_key, self._current = key, snap
            return snap

    def pinned(self, version: int) -> Snapshot:
        """A specific version; no fallback, because the caller asked for exactly this one.

        Raises:
            UnknownVersion, CorruptSnapshot.
        """
        # One stat instead of listing every version: a pinned read (a cursor, the API's page
        # of the version it just resolved) happens on every request.
        if version < 0 or not os.path.isfile(self.layout.version_dir(version) / MANIFEST):
            raise UnknownVersion(version_name(version), map(version_name, self.versions()))
        with self._lock:
            problems = self._check(version)
            if problems:
                raise CorruptSnapshot(version, problems)
            return Snapshot(version, self.layout.version_dir(version), self._manifest(version))

    def as_of(self, when: date | datetime) -> Snapshot:
        """The newest version created on or before `when` (a date: by the end of that UTC day).

        Raises:
            UnknownVersion: no version that old is still kept.
        """
        cutoff = _as_of_cutoff(when)
        with self._lock:
            available = self.versions()
            for v in reversed(available):
                if _created(self._manifest(v)) <= cutoff and not self._check(v):
                    return Snapshot(v, self.layout.version_dir(v), self._manifest(v))
            valid = [f"{version_name(v)} ({self._manifest(v).created_at})" for v in available]
            raise UnknownVersion(f"as of {when.isoformat()}", valid)

    def manifest(self, version: int) -> Manifest:
        """A published version's manifest (cached).

        Raises:
            SnapshotError: missing or invalid.
        """
        with self._lock:
            return self._manifest(version)

    def invalidate(self) -> None:
        """Forget the cached pointer (the next `current()` re-reads it)."""
        with self._lock:
            self._pointer_key = None

    def problems(self, version: int) -> tuple[str, ...] | None:
        """The last verdict on a version (None: not checked yet in this process)."""
        with self._lock:
            return self._problems.get(version)

    def read_failed(self, version: int, error: BaseException) -> tuple[str, ...]:
        """A read of `version` failed: check it again, reading every byte, unless it is known
        damaged already or a read error re-checked it less than `reverify_gap_s` ago.

        Returns:
            Its problems; empty when it is intact, i.e. the error has another cause.
        """
        with self._lock:
            known = self._problems.get(version)
            last = self._error_checked.get(version)
            if known:
                return known
            if last is not None and clock.monotonic() - last < self.reverify_gap_s:
                return ()
        log.warning("reading snapshot %s failed (%s: %s); checking it again",
                    version_name(version), type(error).__name__, str(error).split("\n")[0])
        problems = self._recheck(version, error_gap=True)
        if problems:
            log.error("snapshot %s is damaged: %s", version_name(version), "; ".join(problems))
        return problems

    def reverify(self) -> dict[int, tuple[str, ...]]:
        """Check the version readers get again, reading every byte (during a fallback, also
        the pointer's version, so a repaired one is used again): finds damage done after the
        first check. Returns the problems per version checked."""
        targets: list[int] = []
        try:
            snap: Snapshot | None = self.current()
        except NoSnapshot:
            snap = None
        if snap is not None:
            targets.append(snap.version)
        if snap is None or snap.fallback is not None:
            try:
                pointer = self.layout.read_pointer()
            except SnapshotError:
                pointer = None
            if pointer is not None and pointer not in targets and \
                    self.layout.version_dir(pointer).is_dir():
                targets.append(pointer)
        return {v: self._recheck(v) for v in targets}

    # -- internals ---------------------------------------------------------------------------

    def _recheck(self, version: int, *, error_gap: bool = False) -> tuple[str, ...]:
        """A full check now (hashing outside the main lock, so reads go on meanwhile); a
        changed verdict makes the next `current()` resolve again, which is done right away so
        the listener hears of it without waiting for a request."""
        with self._recheck_lock:  # one full check at a time; a second caller sees its result
            if error_gap:
                with self._lock:
                    known = self._problems.get(version)
                    last = self._error_checked.get(version)
                if known or (last is not None
                             and clock.monotonic() - last < self.reverify_gap_s):
                    return known or ()
            try:
                with self._lock:
                    manifest = self._manifest(version)
                problems = self._examine(version, manifest)
            except SnapshotError as exc:
                problems = (str(exc),)
            with self._lock:
                if error_gap:
                    self._error_checked[version] = clock.monotonic()
                changed = self._problems.get(version) != problems
                self._problems[version] = problems
                if changed:
                    self._pointer_key = None
        if changed:
            try:
                self.current()
            except NoSnapshot:
                pass
        return problems

    def _examine(self, version: int, m: Manifest) -> tuple[str, ...]:
        problems = tuple(verify(self.layout.version_dir(version), m)) if self.check else ()
        if m.version != version:
            problems += (f"manifest says version {m.version}",)
        return problems

    def _note(self, version: int | None, fallback: Fallback | None, detail: str) -> None:
        """Tell the listener when what readers of "current" get changes (callers hold the
        lock). Start-up on the pointer's version is not news, nor is a newly published version
        taking over from a good one; a fallback, no version, and recovery from either are."""
        state = (version, fallback)
        if state == self._serving:
            return
        before = self._serving
        self._serving = state
        if version is None:
            event = SnapshotEvent("unavailable", None, f"no usable snapshot: {detail}")
        elif fallback is not None:
            event = SnapshotEvent("fallback", version, fallback.message)
        elif before is None or (before[0] is not None and before[1] is None):
            return  # first use, or an ordinary publish: nothing was wrong
        else:
            event = SnapshotEvent("normal", version, f"serving {version_name(version)} again")
        if self.listener is not None:
            try:
                self.listener(event)
            except Exception:  # a listener's bug must not break reading
                log.exception("snapshot event listener failed")

    def _manifest(self, version: int) -> Manifest:
        m = self._manifests.get(version)
        if m is None:
            m = load_manifest(self.layout.version_dir(version))
            self._manifests[version] = m
        return m

    def _check(self, version: int) -> tuple[str, ...]:
        """Problems with a version (empty when intact); computed once per version, and again
        by `_recheck`."""
        if version in self._problems:
            return self._problems[version]
        try:
            problems = self._examine(version, self._manifest(version))
        except SnapshotError as exc:
            problems = (str(exc),)
        self._problems[version] = problems
        return problems

    def _with_fallback(self, wanted: int | None, missing: str) -> Snapshot:
        """The pointer's version `wanted` if good, else the newest good older one; with no
        pointer (`missing` says why) the newest good version."""
        if wanted is None:
            versions = self.versions()
            if not versions:
                raise NoSnapshot(str(self.layout.root), [missing])
            problems: tuple[str, ...] = (missing,)
            older = versions
        else:
            problems = self._check(wanted) if self.layout.version_dir(wanted).is_dir() else (
                f"{version_name(wanted)} is missing",)
            if not problems:
                return Snapshot(wanted, self.layout.version_dir(wanted), self._manifest(wanted))
            older = [v for v in self.versions() if v < wanted]
        seen = [f"{version_name(wanted)}: {p}" for p in problems] if wanted is not None \
            else [missing]
        for v in reversed(older):
            if not self._check(v):
                fb = Fallback(wanted, v, problems)
                log.warning(fb.message)
                return Snapshot(v, self.layout.version_dir(v), self._manifest(v), fb)
            seen.extend(f"{version_name(v)}: {p}" for p in self._check(v))
        if wanted is None or older or self.layout.version_dir(wanted).is_dir():
            raise NoGoodVersion(str(self.layout.root), seen)
        raise NoSnapshot(str(self.layout.root), seen)
