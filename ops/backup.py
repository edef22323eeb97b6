"""`fmw backup`: the ledger (pg_dump -Fc) plus the current snapshot version, with checksums and
retention.

::

    <backup_dir>/
        fmw-20261124T020000Z/               one complete backup (renamed into place when done)
            backup.json                     what it holds: checksums, row counts, snapshot version
            ledger.dump                     pg_dump -Fc of the FMW schema
            snapshot/CURRENT.json           a snapshots folder holding just the version that was
            snapshot/versions/v000123/...   current (files and manifest copied and re-verified)
            verify.json                     the last restore rehearsal's outcome (fmw restore --verify)
        .partial-fmw-.../                   a backup being written; removed if it fails

Retention keeps the `backup_keep_count` newest backups and every backup younger than
`backup_keep_days` days, and runs only after a new backup was written and checked, so a failing
backup never costs an old one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from fmw.errors import ConfigError
from fmw.settings import Settings
from lake.health import current_good_version
from lake.layout import Layout, version_name
from lake.manifest import load_manifest, sha256_file, verify
from ledger import audit
from ledger.db import connect
from ledger.dump import BackupError, TableFingerprint, dump
from ops.config import backup_copy_root, backup_root, ops_path, ops_setting

FORMAT = 1
INFO = "backup.json"
DUMP = "ledger.dump"
SNAPSHOT = "snapshot"
VERIFY = "verify.json"
PARTIAL = ".partial-"
PREFIX = "fmw-"
#: A partial folder older than this belongs to a backup that died.
PARTIAL_STALE = timedelta(hours=12)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupInfo:
    """One complete backup, as its backup.json describes it."""

    path: Path
    name: str
    created_at: datetime
    tag: str
    schema: str
    revision: str | None
    server_version: str
    dump_bytes: int
    dump_sha256: str
    tables: tuple[TableFingerprint, ...]
    snapshot_version: int | None
    snapshot_note: str
    verified: dict[str, Any] | None  # the last verify.json, if any

    @property
    def dump_path(self) -> Path:
        return self.path / DUMP

    @property
    def snapshot_root(self) -> Path:
        return self.path / SNAPSHOT

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def bin_dir(settings: Settings) -> Path | None:
    return ops_path(settings, "pg_bin_dir")


def backup_name(created: datetime, tag: str = "") -> str:
    """``fmw-20261124T020000Z`` (UTC), with ``-tag`` appended when given."""
    name = PREFIX + created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{name}-{tag}" if tag else name


def _check_tag(tag: str) -> str:
    if tag and (len(tag) > 40 or not all(c.isalnum() or c in "-_." for c in tag)):
        raise ConfigError(f"a backup tag is up to 40 letters, digits, '-', '_', '.'; got {tag!r}")
    return tag


def create_backup(settings: Settings, *, tag: str = "", now: datetime | None = None) -> BackupInfo:
    """Write one complete backup and return it (retention is separate: `apply_retention`).

    Raises:
        BackupError: the dump failed or is empty/unreadable, or the snapshot copy does not
            match its manifest; nothing is left behind.
        DatabaseUnavailable: the ledger cannot be reached.
    """
    created = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    root = backup_root(settings)
    name = backup_name(created, _check_tag(tag))
    final = root / name
    if final.exists():
        raise BackupError(str(final), "a backup of that name exists (two backups in one second?)")
    work = root / f"{PARTIAL}{name}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        anchor = _audit_head(settings)
        info = dump(settings, work / DUMP, bin_dir(settings))
        snap_version, note = _copy_snapshot(settings, work / SNAPSHOT)
        doc = {
            "format": FORMAT, "name": name, "created_at": created.isoformat(), "tag": tag,
            "schema": info.schema, "revision": info.revision,
            "server_version": info.server_version,
            "pg_dump": os.path.basename(info.tool),
            "dump": {"file": DUMP, "bytes": (work / DUMP).stat().st_size,
                     "sha256": sha256_file(work / DUMP)},
            "tables": {t.table: t.as_json() for t in info.tables},
            "snapshot": {"version": snap_version, "note": note,
                         "path": f"{SNAPSHOT}/versions/{version_name(snap_version)}"
                         if snap_version is not None else None},
            "audit_head": anchor.as_json() if anchor is not None else None,
        }
        (work / INFO).write_text(json.dumps(doc, indent=2), encoding="utf-8", newline="\n")
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if anchor is not None:
        # the head outside the database: in backup.json, the anchors file and the log
        audit.save_anchor(settings.data_dir, anchor)
        log.info("audit head anchored by backup %s: row %d %s", name, anchor.seq, anchor.hash)
    copy_root = backup_copy_root(settings)
    if copy_root is not None:
        copy_backup(final, copy_root)
    return load_backup(final)


def copy_backup(folder: Path, root: Path) -> Path:
    """Copy one complete backup to `root` (another disk or a share) and check the copy: the
    dump's sha256 and every snapshot file against its manifest. Written to a partial folder and
    renamed into place, so the copy is whole or absent.

    Raises:
        BackupError: the copy could not be written or does not match (the original is kept).
    """
    final = root / folder.name
    work = root / f"{PARTIAL}{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(folder, work)
        copied = load_backup(work)
        if sha256_file(copied.dump_path) != copied.dump_sha256:
            raise BackupError(str(work / DUMP), "the copied dump does not match its checksum")
        if copied.snapshot_version is not None:
            vdir = Layout(copied.snapshot_root).version_dir(copied.snapshot_version)
            problems = verify(vdir, load_manifest(vdir))
            if problems:
                raise BackupError(str(vdir), "the copied snapshot does not match its "
                                  f"manifest: {'; '.join(problems[:3])}")
        os.rename(work, final)
    except BackupError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(str(final), f"backup {folder.name} was written to {folder.parent}, "
                          f"but its copy to {root} failed: {exc}") from exc
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(str(final), f"backup {folder.name} was written to {folder.parent}, "
                          f"but its copy to {root} failed: {exc}") from exc
    log.info("backup %s copied to %s and checked", folder.name, root)
    return final


def _audit_head(settings: Settings) -> audit.AuditAnchor | None:
    """The audit chain's head, or None when this schema has no audit log (yet)."""
    try:
        with connect(settings, autocommit=True) as conn:
            return audit.head(conn)
    except psycopg.errors.UndefinedTable:
        return None


def backup_anchors(root: Path) -> list[audit.AuditAnchor]:
    """The audit heads recorded in the backups under `root`."""
    found = []
    for b in list_backups(root):
        try:
            doc = json.loads((b.path / INFO).read_text(encoding="utf-8"))
            h = doc.get("audit_head")
            if h:
                found.append(audit.AuditAnchor(int(h["seq"]), str(h["hash"]), str(h["at"]),
                                               f"backup {b.name}"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("backup %s: audit head unreadable: %s", b.name, exc)
    return found


def _copy_snapshot(settings: Settings, target: Path) -> tuple[int | None, str]:
    """Copy the version readers are served into `target` (a one-version snapshots folder)."""
    layout = Layout(settings.snapshots_path)
    version, problems = current_good_version(layout)
    if version is None:
        note = "no published snapshot" + (f" ({'; '.join(problems)})" if problems else "")
        log.warning("backup without a snapshot: %s", note)
        return None, note
    copy = Layout(target)
    shutil.copytree(layout.version_dir(version), copy.version_dir(version))
    bad = verify(copy.version_dir(version), load_manifest(copy.version_dir(version)))
    if bad:
        raise BackupError(str(copy.version_dir(version)), "the snapshot copy does not match "
                          f"its manifest: {'; '.join(bad[:5])}")
    copy.write_pointer(version)
    note = "current" if not problems else f"newest good version ({'; '.join(problems)})"
    return version, note


def load_backup(path: Path) -> BackupInfo:
    """Read a backup's backup.json.

    Raises:
        BackupError: not a backup folder, or its backup.json is unreadable.
    """
    try:
        doc = json.loads((path / INFO).read_text(encoding="utf-8"))
        tables = tuple(TableFingerprint(t, int(v["rows"]), str(v["checksum"]))
                       for t, v in sorted(doc["tables"].items()))
        verified = None
        if (path / VERIFY).is_file():
            verified = json.loads((path / VERIFY).read_text(encoding="utf-8"))
        return BackupInfo(
            path=path, name=str(doc["name"]), created_at=datetime.fromisoformat(doc["created_at"]),
            tag=str(doc.get("tag") or ""), schema=str(doc["schema"]), revision=doc.get("revision"),
            server_version=str(doc.get("server_version", "")),
            dump_bytes=int(doc["dump"]["bytes"]), dump_sha256=str(doc["dump"]["sha256"]),
            tables=tables, snapshot_version=doc["snapshot"]["version"],
            snapshot_note=str(doc["snapshot"].get("note") or ""), verified=verified)
    except FileNotFoundError:
        raise BackupError(str(path), f"not a backup: {INFO} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(str(path / INFO), f"unreadable: {exc}") from exc


def list_backups(root: Path) -> list[BackupInfo]:
    """Complete backups under `root`, oldest first (unreadable folders are skipped, logged)."""
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name.startswith(PREFIX) and (p / INFO).is_file():
            try:
                out.append(load_backup(p))
            except BackupError as exc:
                log.warning("skipping %s", exc)
    return sorted(out, key=lambda b: (b.created_at, b.name))


def find_backup(settings: Settings, which: str | None) -> BackupInfo:
    """A backup by folder path or name; None means the newest.

    Raises:
        BackupError: no such backup (or none at all).
    """
    root = backup_root(settings)
    if which:
        p = Path(which)
        return load_backup(p if p.is_dir() else root / which)
    found = list_backups(root)
    if not found:
        raise BackupError(str(root), "no backups yet: run `fmw backup`")
    return found[-1]


@dataclass(frozen=True)
class BackupRetention:
    keep: tuple[str, ...]
    remove: tuple[str, ...]


def plan_retention(backups: Sequence[tuple[str, datetime]], now: datetime, keep_days: float,
                   keep_count: int) -> BackupRetention:
    """Keep the `keep_count` newest backups and all younger than `keep_days`; remove the rest.

    Raises:
        ConfigError: keep_count below 1 or keep_days negative.
    """
    if keep_count < 1:
        raise ConfigError(f"backup_keep_count must be at least 1, got {keep_count}")
    if keep_days < 0:
        raise ConfigError(f"backup_keep_days must not be negative, got {keep_days}")
    ordered = sorted(backups, key=lambda b: (b[1], b[0]), reverse=True)
    newest = {n for n, _ in ordered[:keep_count]}
    young = {n for n, t in ordered if now - t < timedelta(days=keep_days)}
    keep = tuple(n for n, _ in reversed(ordered) if n in newest | young)
    return BackupRetention(keep, tuple(n for n, _ in reversed(ordered) if n not in keep))


def apply_retention(settings: Settings, *, now: datetime | None = None) -> BackupRetention:
    """Remove the backups the retention plan drops, and stale partial folders."""
    root = backup_root(settings)
    now = now or datetime.now(UTC)
    plan = plan_retention([(b.name, b.created_at) for b in list_backups(root)], now,
                          float(ops_setting(settings, "backup_keep_days")),
                          int(ops_setting(settings, "backup_keep_count")))
    copy_root = backup_copy_root(settings)
    for folder in (root, copy_root):  # the copies follow the same plan
        if folder is None:
            continue
        for name in plan.remove:
            shutil.rmtree(folder / name, ignore_errors=True)
        if folder.is_dir():
            for p in folder.iterdir():
                if p.name.startswith(PARTIAL) and p.is_dir():
                    age = now - datetime.fromtimestamp(p.stat().st_mtime, UTC)
                    if age > PARTIAL_STALE:
                        shutil.rmtree(p, ignore_errors=True)
    return plan
