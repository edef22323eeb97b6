"""The snapshot folder layout: the contract between the writer (`lake`) and every reader.

::

    <snapshots_dir>/
        CURRENT.json                        pointer to the current version (temp file + os.replace)
        versions/
            v000123/                        one immutable, published version
                manifest.json               written last; a version without it is incomplete
                features/feature_group=<g>/part-0.parquet   hive-partitioned, sorted by
                                                           (feature_name, mcc, mnc)
                changes/part-0.parquet      the recent window of the change history
                runs/part-0.parquet
                daily_counts/part-0.parquet
                name_map/part-0.parquet
                mcc_mnc_map/part-0.parquet
        tmp/
            v000124.<pid>.<random>/         a version being written; never read; removed on failure
                                            or by the next publish
            deleting-v000118.<random>/      a version retention retired (moved here in one rename,
                                            then deleted; retried by the next publish)

A published version folder is never modified. Readers resolve CURRENT.json once per query (or
pin a version) and read only inside that version's folder, so they always see one whole version.
On Windows a file another process holds open cannot be replaced or deleted; that is why
versions get new folders, only the small pointer is replaced (with retries), and old versions
are deleted later by retention.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from fmw.errors import FmwError

POINTER = "CURRENT.json"
VERSIONS = "versions"
TMP = "tmp"
MANIFEST = "manifest.json"
TABLES = ("features", "changes", "runs", "daily_counts", "name_map", "mcc_mnc_map")
PARTITION_COLUMN = "feature_group"
_VERSION_RE = re.compile(r"^v(\d{6,})$")
_WORK_RE = re.compile(r"^v(\d{6,})\.(\d+)\.([0-9a-f]+)$")
#: Prefix of a retired version moved into tmp/ by retention before it is deleted.
TRASH_PREFIX = "deleting-"
#: Feature groups become folder names; the ledger only accepts groups matching this.
GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SnapshotError(FmwError):
    """No usable snapshot, or a snapshot folder that is not what the manifest says."""


def version_name(version: int) -> str:
    """``123`` -> ``"v000123"``."""
    return f"v{version:06d}"


def parse_version_name(name: str) -> int | None:
    m = _VERSION_RE.match(name)
    return int(m.group(1)) if m else None


def work_name(version: int, pid: int, token: str) -> str:
    """Name of the tmp/ folder a version is written in: ``v000124.<pid>.<random hex>``."""
    return f"{version_name(version)}.{pid}.{token}"


def parse_work_name(name: str) -> tuple[int, int] | None:
    """``"v000124.4711.ab12"`` -> ``(124, 4711)`` (version, writer pid); None for other names."""
    m = _WORK_RE.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class Layout:
    """Paths inside one snapshots folder."""

    root: Path

    @property
    def pointer(self) -> Path:
        return self.root / POINTER

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS

    @property
    def tmp_dir(self) -> Path:
        return self.root / TMP

    def version_dir(self, version: int) -> Path:
        return self.versions_dir / version_name(version)

    def table_dir(self, version: int, table: str) -> Path:
        if table not in TABLES:
            raise SnapshotError(f"unknown snapshot table {table!r}; valid: {', '.join(TABLES)}")
        return self.version_dir(version) / table

    def highest_on_disk(self) -> int:
        """The highest version number used by any folder in versions/ or tmp/ (0 if none)."""
        found = [0]
        for folder, parse in ((self.versions_dir, parse_version_name), (self.tmp_dir, parse_work_name)):
            if folder.is_dir():
                for p in folder.iterdir():
                    got = parse(p.name)
                    if isinstance(got, tuple):
                        found.append(got[0])
                    elif got is not None:
                        found.append(got)
        return max(found)

    def versions(self) -> list[int]:
        """Published versions (folders with a manifest), oldest first."""
        if not self.versions_dir.is_dir():
            return []
        found = []
        for p in self.versions_dir.iterdir():
            v = parse_version_name(p.name)
            if v is not None and (p / MANIFEST).is_file():
                found.append(v)
        return sorted(found)

    def read_pointer(self) -> int | None:
        """The version CURRENT.json names, or None when nothing was published yet.

        On Windows a pointer that a publisher is replacing at this instant cannot be opened
        (sharing violation, PermissionError): the read is retried for up to about a second.
        """
        for attempt in range(10):
            try:
                data = json.loads(self.pointer.read_text(encoding="utf-8"))
                break
            except FileNotFoundError:
                return None
            except PermissionError as exc:
                if attempt == 9:
                    raise SnapshotError(f"{self.pointer} is unreadable: {exc}") from exc
                time.sleep(0.02 * (attempt + 1))
            except (OSError, ValueError) as exc:
                raise SnapshotError(f"{self.pointer} is unreadable: {exc}") from exc
        v = data.get("version") if isinstance(data, dict) else None
        if not isinstance(v, int):
            raise SnapshotError(f"{self.pointer} does not name a version")
        return v

    def write_pointer(self, version: int, *, attempts: int = 20, delay_s: float = 0.05) -> None:
        """Point CURRENT.json at `version`: temp file, fsync, os.replace with retries.

        Raises:
            SnapshotError: the pointer could not be replaced (e.g. held open on Windows).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": version, "name": version_name(version)}).encode()
        tmp = self.root / f".{POINTER}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        last: OSError | None = None
        for i in range(attempts):
            try:
                os.replace(tmp, self.pointer)
                return
            except PermissionError as exc:  # Windows: a reader has the file open right now
                last = exc
                time.sleep(delay_s * (i + 1))
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"could not switch {self.pointer} to {version_name(version)}: {last}")
