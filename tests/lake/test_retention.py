"""Retention: keep the newest N and anything within the grace period, never the current one."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lake.layout import Layout
from lake.publish import apply_retention, publish_snapshot
from lake.retention import plan_retention
from ledger.snapshots import SnapshotBook, list_snapshots

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


@pytest.mark.parametrize(("created", "current", "keep", "grace", "kept"), [
    ({1: ago(50), 2: ago(40), 3: ago(30), 4: ago(20)}, 4, 2, 0, (3, 4)),
    ({1: ago(50), 2: ago(40), 3: ago(30), 4: ago(20)}, 4, 2, 45, (2, 3, 4)),  # 2 is in grace
    ({1: ago(50), 2: ago(40), 3: ago(30), 4: ago(20)}, 4, 1, 24, (4,)),
    ({1: ago(50), 2: ago(40), 3: ago(30), 4: ago(20)}, 1, 1, 0, (1, 2, 3, 4)),  # rolled back
    ({1: ago(50), 2: ago(40), 3: ago(30), 4: ago(20)}, 2, 1, 0, (2, 3, 4)),
    ({1: ago(1), 2: ago(1)}, 2, 1, 24, (1, 2)),
    ({}, None, 5, 24, ()),
])
def test_plan_keeps_newest_young_and_current(created, current, keep, grace, kept):
    plan = plan_retention(created, current, keep, grace, NOW)
    assert plan.keep == kept
    assert plan.delete == tuple(sorted(set(created) - set(kept)))
    if current is not None:
        assert current in plan.keep


@pytest.fixture
def keep2(make_settings, tmp_path, ledger):
    """The ledger fixture's schema, with keep 2 and no grace period."""
    return make_settings(ledger.settings.config_path.read_text(), FMW_SNAPSHOT_KEEP="2",
                         FMW_SNAPSHOT_GRACE_HOURS="0",
                         FMW_SNAPSHOTS_DIR=str(ledger.settings.snapshots_path))


def statuses(conn) -> dict[int, str]:
    return {r.version: r.status for r in list_snapshots(conn)}


def test_old_versions_beyond_keep_are_deleted_and_recorded(keep2, ledger):
    for _ in range(4):
        publish_snapshot(keep2, None)
    layout = Layout(keep2.snapshots_path)
    assert layout.versions() == [3, 4] and layout.read_pointer() == 4
    assert statuses(ledger.conn) == {1: "deleted", 2: "deleted", 3: "published", 4: "published"}
    assert list(layout.tmp_dir.iterdir()) == []


def test_versions_within_the_grace_period_are_kept_until_it_ends(ledger):
    s = ledger.settings.with_overrides(snapshot_keep=1, snapshot_grace_hours=24.0)
    for _ in range(3):
        publish_snapshot(s, None)
    layout = Layout(s.snapshots_path)
    assert layout.versions() == [1, 2, 3]
    publish_snapshot(s, None, now=datetime.now(UTC) + timedelta(hours=25))
    assert layout.versions() == [4]


def test_the_current_version_is_never_deleted(keep2, ledger):
    for _ in range(3):
        publish_snapshot(keep2.with_overrides(snapshot_keep=5), None)
    layout = Layout(keep2.snapshots_path)
    layout.write_pointer(2)  # an operator rolled back to an older version
    s1 = keep2.with_overrides(snapshot_keep=1)
    with SnapshotBook(s1) as book:
        assert apply_retention(s1, layout, book) == [1]
    assert layout.versions() == [2, 3] and layout.read_pointer() == 2


@contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """Make a folder impossible to move or empty, as an open file does on Windows."""
    if os.name == "nt":
        pytest.skip("uses POSIX permissions")
    if os.geteuid() != 0:
        path.chmod(0o555)  # no rename out of its parent, no unlink inside
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: permissions cannot stop a delete")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_version_that_cannot_be_deleted_is_kept_whole_and_retried_next_time(keep2, ledger,
                                                                              caplog):
    s1 = keep2.with_overrides(snapshot_keep=1)
    publish_snapshot(s1, None)
    layout = Layout(s1.snapshots_path)
    with undeletable(layout.version_dir(1)), caplog.at_level(logging.WARNING, "lake.retention"):
        publish_snapshot(s1, None)
        assert layout.versions() == [1, 2]
        assert "could not retire snapshot v000001" in caplog.text
        assert statuses(ledger.conn)[1] == "published"
        assert sorted(p.name for p in layout.version_dir(1).rglob("*.parquet"))  # still whole
    publish_snapshot(s1, None)
    assert layout.versions() == [3]
    assert statuses(ledger.conn) == {1: "deleted", 2: "deleted", 3: "published"}
