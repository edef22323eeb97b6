"""Which snapshot version a read uses: CURRENT.json, a pinned version, or the one valid on a date.

Versions are immutable, so a version's manifest and checksum verdict are cached forever; the
pointer is re-read only when its file changes (stat: mtime, size, inode), which makes resolving
"current" at the start of every query cheap and picks up a new publish without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from lake.layout import MANIFEST, PARTITION_COLUMN, TABLES, Layout, SnapshotError, version_name
from lake.manifest import Manifest, load_manifest, verify
from query.errors import CorruptSnapshot, NoSnapshot, UnknownGroup, UnknownTable, UnknownVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fallback:
    """CURRENT.json named `requested`, but it failed its checks, so `used` was read instead."""

    requested: int
    used: int
    problems: tuple[str, ...]

    @property
    def message(self) -> str:
        return (f"snapshot {version_name(self.requested)} is damaged "
                f"({'; '.join(self.problems)}); serving {version_name(self.used)}")


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
    """Resolves and verifies snapshot versions under one snapshots folder (thread-safe)."""

    def __init__(self, root: Path, *, check: bool = True) -> None:
        self.layout = Layout(root)
        self.check = check
        self._lock = threading.Lock()
        self._pointer_key: tuple[int, int, int] | None = None
        self._current: Snapshot | None = None
        self._manifests: dict[int, Manifest] = {}
        self._problems: dict[int, tuple[str, ...]] = {}

    def versions(self) -> list[int]:
        """Published versions, oldest first."""
        return self.layout.versions()

    def current(self) -> Snapshot:
        """The version CURRENT.json names, or the newest good older one if it is damaged.

        Raises:
            NoSnapshot: nothing published, or no version passes its checks.
        """
        try:
            st = os.stat(self.layout.pointer)
        except FileNotFoundError:
            raise NoSnapshot(str(self.layout.root), ["CURRENT.json is missing"]) from None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if key == self._pointer_key and self._current is not None:
                return self._current
            try:
                wanted = self.layout.read_pointer()
            except SnapshotError as exc:
                raise NoSnapshot(str(self.layout.root), [str(exc)]) from exc
            if wanted is None:
                raise NoSnapshot(str(self.layout.root), ["CURRENT.json is missing"])
            snap = self._with_fallback(wanted)
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

    # -- internals (callers hold self._lock) ---------------------------------------------------

    def _manifest(self, version: int) -> Manifest:
        m = self._manifests.get(version)
        if m is None:
            m = load_manifest(self.layout.version_dir(version))
            self._manifests[version] = m
        return m

    def _check(self, version: int) -> tuple[str, ...]:
        """Problems with a version (empty when intact); computed once per version."""
        if version in self._problems:
            return self._problems[version]
        vdir = self.layout.version_dir(version)
        try:
            m = self._manifest(version)
            problems = tuple(verify(vdir, m)) if self.check else ()
            if m.version != version:
                problems += (f"manifest says version {m.version}",)
        except SnapshotError as exc:
            problems = (str(exc),)
        self._problems[version] = problems
        return problems

    def _with_fallback(self, wanted: int) -> Snapshot:
        problems = self._check(wanted) if self.layout.version_dir(wanted).is_dir() else (
            f"{version_name(wanted)} is missing",)
        if not problems:
            return Snapshot(wanted, self.layout.version_dir(wanted), self._manifest(wanted))
        seen = [f"{version_name(wanted)}: {p}" for p in problems]
        for v in reversed([v for v in self.versions() if v < wanted]):
            if not self._check(v):
                fb = Fallback(wanted, v, problems)
                log.warning(fb.message)
                return Snapshot(v, self.layout.version_dir(v), self._manifest(v), fb)
            seen.extend(f"{version_name(v)}: {p}" for p in self._check(v))
        raise NoSnapshot(str(self.layout.root), seen)
