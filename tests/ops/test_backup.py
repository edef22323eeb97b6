"""Backups and the restore rehearsal on the real embedded PostgreSQL: a backup -> restore
--verify round trip through `fmw` subprocesses, corrupted and empty dumps failing loudly,
retention, and the real restore a deploy rollback uses."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ledger.db import connect
from ledger.dump import BackupError, check_dump, fingerprint, list_scratch_databases
from ops.backup import (
    DUMP,
    INFO,
    VERIFY,
    apply_retention,
    create_backup,
    list_backups,
    load_backup,
    plan_retention,
)
from ops.config import with_values
from ops.rehearse import verify_backup
from tests.ops.conftest import build, fmw


def test_backup_then_restore_verify_round_trip(ops_env):
    scratch_before = list_scratch_databases(ops_env.settings)
    r = fmw(ops_env, "backup", "--json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    folder = Path(made["path"])
    assert (folder / DUMP).stat().st_size > 0 and made["snapshot_version"] == 1
    info = json.loads((folder / INFO).read_text())
    assert info["tables"]["features"]["rows"] == 40 and info["revision"]
    snap = folder / "snapshot" / "versions" / "v000001"
    assert (snap / "manifest.json").is_file() and (folder / "snapshot" / "CURRENT.json").is_file()

    r = fmw(ops_env, "restore", made["name"], "--verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "restore rehearsal of " + made["name"] + " passed" in r.stdout
    assert "ok   features" in r.stdout
    verified = json.loads((folder / VERIFY).read_text())
    assert verified["ok"] is True and {t["table"] for t in verified["tables"]} >= {
        "features", "changes", "runs", "allow_list", "api_keys", "alembic_version"}
    assert list_scratch_databases(ops_env.settings) == scratch_before  # dropped again


def test_the_rehearsal_compares_with_what_was_dumped(ops_env):
    b = create_backup(ops_env.settings, tag="cmp")
    doc = json.loads((b.path / INFO).read_text())
    doc["tables"]["features"]["rows"] += 1
    doc["tables"]["runs"]["checksum"] = "12345"
    (b.path / INFO).write_text(json.dumps(doc))
    r = verify_backup(ops_env.settings, load_backup(b.path))
    assert not r.ok
    bad = {t.table: t for t in r.tables if not t.ok}
    assert set(bad) == {"features", "runs"}
    assert bad["features"].rows_restored == 40 and bad["features"].rows_expected == 41
    assert bad["runs"].rows_restored == bad["runs"].rows_expected and not bad["runs"].checksum_ok
    res = fmw(ops_env, "restore", b.name, "--verify")
    assert res.returncode == 1 and "FAILED" in res.stderr and "DIFFERS" in res.stdout


@pytest.mark.parametrize(("damage", "message"), [
    ("empty", "the dump is empty (0 bytes)"),
    ("truncated", "the dump is truncated or was replaced"),
    ("flipped", "SHA-256 mismatch: the dump is corrupted"),
    ("missing", "unreadable"),
])
def test_a_damaged_dump_fails_the_rehearsal_loudly(ops_env, damage, message):
    b = create_backup(ops_env.settings, tag=f"bad-{damage}")
    dump = b.path / DUMP
    data = dump.read_bytes()
    if damage == "empty":
        dump.write_bytes(b"")
    elif damage == "truncated":
        dump.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        dump.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        dump.unlink()
    r = fmw(ops_env, "restore", b.name, "--verify")
    assert r.returncode == 1
    assert message in r.stderr and str(dump) in r.stderr


def test_pg_restore_refuses_what_is_not_a_dump(tmp_path):
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    with pytest.raises(BackupError, match="empty"):
        check_dump(empty)
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"PGDMP" + os.urandom(2000))
    with pytest.raises(BackupError, match=r"pg_restore(\.exe)? failed"):
        check_dump(junk)


def test_a_damaged_snapshot_copy_fails_the_rehearsal(ops_env):
    b = create_backup(ops_env.settings, tag="snapdamage")
    part = next((b.snapshot_root / "versions" / "v000001" / "features").rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[:-10] + b"0123456789")
    r = verify_backup(ops_env.settings, b)
    assert all(t.ok for t in r.tables) and not r.ok
    assert any("checksum" in p for p in r.snapshot_problems)


@pytest.mark.skipif(os.name == "nt", reason="a POSIX shell script stands in for pg_dump")
def test_a_pg_dump_that_writes_nothing_fails_the_backup_and_leaves_nothing(ops_env, tmp_path):
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do case $a in --file=*) : > \"${a#--file=}\";; "
                    "esac; done\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    s = with_values(ops_env.settings, pg_bin_dir=str(fake.parent),
                    backup_dir=str(tmp_path / "backups"))
    with pytest.raises(BackupError, match=r"empty \(0 bytes\)"):
        create_backup(s)
    assert list((tmp_path / "backups").iterdir()) == []


def test_a_schema_without_a_snapshot_is_backed_up_and_verified(make_settings):
    s = make_settings()
    b = create_backup(s)
    assert b.snapshot_version is None and "no published snapshot" in b.snapshot_note
    assert verify_backup(s, b).ok


def utc(days: float) -> datetime:
    return datetime(2026, 11, 24, 2, 30, tzinfo=UTC) - timedelta(days=days)


@pytest.mark.parametrize(("ages", "days", "count", "removed"), [
    ([0, 1, 2, 3], 14, 2, []),                  # all young
    ([0, 1, 20, 30], 14, 2, ["b20", "b30"]),    # old, and not among the two newest
    ([0, 20, 30, 40], 14, 2, ["b30", "b40"]),
    ([20, 30, 40], 14, 1, ["b30", "b40"]),      # the newest always stays
    ([0, 1, 2], 0, 1, ["b1", "b2"]),
])
def test_retention_keeps_the_newest_n_and_the_young(ages, days, count, removed):
    backups = [(f"b{a}", utc(a)) for a in ages]
    plan = plan_retention(backups, utc(0) + timedelta(minutes=1), days, count)
    assert sorted(plan.remove) == sorted(removed)
    assert sorted(plan.keep + plan.remove) == sorted(n for n, _ in backups)


def test_retention_refuses_to_keep_nothing():
    from fmw.errors import ConfigError
    with pytest.raises(ConfigError, match="backup_keep_count"):
        plan_retention([], utc(0), 14, 0)


def test_backups_past_retention_are_removed(make_settings, tmp_path):
    s = with_values(make_settings(), backup_dir=str(tmp_path / "b"), backup_keep_days=5,
                    backup_keep_count=1)
    for age in (20, 10, 1):
        create_backup(s, now=utc(age))
    stale = tmp_path / "b" / ".partial-fmw-x"
    stale.mkdir()
    os.utime(stale, (0, 0))
    plan = apply_retention(s, now=utc(0))
    assert len(plan.remove) == 2 and not stale.exists()
    assert [b.created_at for b in list_backups(tmp_path / "b")] == [utc(1)]


def test_replace_restores_the_ledger_and_skips_when_the_schema_did_not_change(pg_url, tmp_path):
    env = build(pg_url, tmp_path)
    try:
        b = create_backup(env.settings, tag="pre-deploy")
        with connect(env.settings, autocommit=True) as conn:
            before = fingerprint(conn, env.settings.schema)
            conn.execute("DELETE FROM features WHERE feature_group = 'vonr'")
        r = fmw(env, "restore", b.name, "--replace", "--yes", "--if-schema-changed")
        assert r.returncode == 0 and "nothing restored" in r.stdout
        with connect(env.settings, autocommit=True) as conn:
            assert fingerprint(conn, env.settings.schema) != before
            # a migration moved the schema on (here: a new table and revision)
            conn.execute("CREATE TABLE added_by_migration (x int)")
            conn.execute("UPDATE alembic_version SET version_num = 'future'")
        assert fmw(env, "restore", b.name, "--replace").returncode == 2  # needs --yes
        r = fmw(env, "restore", b.name, "--replace", "--yes", "--if-schema-changed")
        assert r.returncode == 0, r.stderr
        assert "differs from the backup's" in r.stdout and "replaced" in r.stdout
        with connect(env.settings, autocommit=True) as conn:
            assert fingerprint(conn, env.settings.schema) == before
            schemas = [x[0] for x in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                (env.settings.schema + "%",))]
        assert schemas == [env.settings.schema]  # the replaced copy was dropped
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{env.settings.schema}" CASCADE')


def test_backup_list_shows_rehearsal_results(ops_env):
    r = fmw(ops_env, "backup", "list")
    assert r.returncode == 0 and "rehearsal passed" in r.stdout


def test_a_backup_anchors_the_audit_head_outside_the_database(ops_env):
    """Issue 11: each backup records the audit chain's head (backup.json and the anchors
    file), so `fmw audit verify` can tell a rewritten chain from an intact one."""
    from ledger.audit import head, load_anchors
    with connect(ops_env.settings, autocommit=True) as conn:
        now = head(conn)
    b = create_backup(ops_env.settings, tag="anchor")
    doc = json.loads((b.path / INFO).read_text())
    assert doc["audit_head"]["seq"] == now.seq and doc["audit_head"]["hash"] == now.hash
    anchors, bad = load_anchors(ops_env.settings.data_dir)
    assert not bad and anchors[-1].hash == now.hash
    r = fmw(ops_env, "audit", "verify")
    assert r.returncode == 0 and "anchor(s) outside the database match" in r.stdout, r.stderr


def test_every_backup_is_copied_to_the_second_place_and_checked(ops_env, tmp_path):
    """Issue 13: backups lived only on the disk they protect; `backup_copy_dir` gets a checked
    copy of each one, and retention applies there too."""
    copy_dir = tmp_path / "share"
    s = with_values(ops_env.settings, backup_copy_dir=str(copy_dir))
    b = create_backup(s, tag="copied")
    copied = load_backup(copy_dir / b.name)
    assert copied.dump_sha256 == b.dump_sha256 and copied.rows == b.rows
    assert (copy_dir / b.name / DUMP).read_bytes() == b.dump_path.read_bytes()
    assert not [p for p in copy_dir.iterdir() if p.name.startswith(".partial")]


def test_a_failed_copy_fails_the_backup_loudly_and_keeps_the_original(ops_env, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    s = with_values(ops_env.settings, backup_copy_dir=str(blocker / "share"))
    with pytest.raises(BackupError, match="but its copy to .* failed"):
        create_backup(s, tag="copyfail")
    assert any(b.tag == "copyfail" for b in list_backups(ops_env.settings.data_dir / "backups"))
