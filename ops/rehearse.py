"""`fmw restore`: the restore rehearsal (`--verify`) and the real restore (`--replace`).

The rehearsal checks a backup end to end without touching the ledger: the dump's SHA-256, its
table of contents, a full ``pg_restore`` into a scratch database on the same server (dropped
afterwards), and every table's row count and checksum against the ones recorded when the dump
was taken; then the snapshot copy against its manifest (sizes, SHA-256, Parquet footers).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fmw.settings import Settings
from lake.health import check_version
from lake.layout import Layout
from lake.manifest import sha256_file
from ledger.dump import (
    BackupError,
    check_dump,
    replace_schema,
    restore,
    restored_fingerprint,
    scratch_database,
)
from ops.backup import VERIFY, BackupInfo, bin_dir


@dataclass(frozen=True)
class TableCheck:
    table: str
    rows_expected: int
    rows_restored: int | None  # None: the table is missing from the restored copy
    checksum_ok: bool

    @property
    def ok(self) -> bool:
        return self.rows_restored == self.rows_expected and self.checksum_ok


@dataclass(frozen=True)
class Rehearsal:
    backup: str
    tables: tuple[TableCheck, ...]
    snapshot_problems: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables) and not self.snapshot_problems

    def as_json(self) -> dict[str, object]:
        return {"backup": self.backup, "ok": self.ok, "seconds": round(self.seconds, 3),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "tables": [{"table": t.table, "rows_expected": t.rows_expected,
                            "rows_restored": t.rows_restored, "checksum_ok": t.checksum_ok}
                           for t in self.tables],
                "snapshot_problems": list(self.snapshot_problems)}


def check_files(b: BackupInfo) -> None:
    """The dump is the file backup.json describes (size, SHA-256) and pg_restore can read it.

    Raises:
        BackupError: empty, truncated, corrupted or unreadable.
    """
    path = b.dump_path
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BackupError(str(path), f"unreadable: {exc}") from exc
    if size == 0:
        raise BackupError(str(path), "the dump is empty (0 bytes)")
    if size != b.dump_bytes:
        raise BackupError(str(path), f"{size} bytes, backup.json says {b.dump_bytes}: "
                          "the dump is truncated or was replaced")
    if sha256_file(path) != b.dump_sha256:
        raise BackupError(str(path), "SHA-256 mismatch: the dump is corrupted")


def snapshot_problems(b: BackupInfo) -> list[str]:
    if b.snapshot_version is None:
        return []
    return check_version(Layout(b.snapshot_root), b.snapshot_version)


def verify_backup(settings: Settings, b: BackupInfo) -> Rehearsal:
    """Restore `b` into a scratch database and compare it with what was dumped.

    The outcome is also written to the backup's verify.json (shown by `fmw status`).

    Raises:
        BackupError: the dump is corrupted, empty or unreadable, or pg_restore failed.
    """
    start = time.perf_counter()
    check_files(b)
    check_dump(b.dump_path, [t.table for t in b.tables], bin_dir(settings))
    with scratch_database(settings) as url:
        restore(b.dump_path, url, bin_dir=bin_dir(settings))
        got = {t.table: t for t in restored_fingerprint(url, b.schema)}
    checks = []
    for t in b.tables:
        r = got.get(t.table)
        checks.append(TableCheck(t.table, t.rows, r.rows if r else None,
                                 r is not None and r.checksum == t.checksum))
    result = Rehearsal(b.name, tuple(checks), tuple(snapshot_problems(b)),
                       time.perf_counter() - start)
    (b.path / VERIFY).write_text(json.dumps(result.as_json(), indent=2), encoding="utf-8", newline="\n")
    return result


@dataclass(frozen=True)
class Restored:
    backup: str
    schema: str
    snapshot_version: int | None
    snapshot_copied: bool


def restore_backup(settings: Settings, b: BackupInfo) -> Restored:
    """Replace the ledger schema with the backup's, and bring its snapshot version back.

    The snapshot version is copied into the snapshots folder when missing there; CURRENT.json
    is pointed at it only when nothing usable is current (the next sync publishes a snapshot
    of the restored ledger).

    Raises:
        BackupError: the dump is bad or pg_restore failed (the ledger is as it was).
    """
    check_files(b)
    if b.schema != settings.schema:
        raise BackupError(str(b.path), f"the backup holds schema {b.schema!r}, the settings "
                          f"name {settings.schema!r}")
    bad = snapshot_problems(b)
    if bad:
        raise BackupError(str(b.snapshot_root), "the snapshot copy is damaged: " + "; ".join(bad))
    check_dump(b.dump_path, [t.table for t in b.tables], bin_dir(settings))
    replace_schema(settings, b.dump_path, bin_dir(settings))
    copied = False
    if b.snapshot_version is not None:
        live = Layout(settings.snapshots_path)
        src = Layout(b.snapshot_root).version_dir(b.snapshot_version)
        dst = live.version_dir(b.snapshot_version)
        if not dst.exists():
            live.versions_dir.mkdir(parents=True, exist_ok=True)
            tmp = live.versions_dir / f".restore-{dst.name}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            Path(tmp).rename(dst)
            copied = True
        from lake.health import current_good_version
        serving, _ = current_good_version(live)
        if serving is None:
            live.write_pointer(b.snapshot_version)
    return Restored(b.name, b.schema, b.snapshot_version, copied)
