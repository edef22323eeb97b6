"""The snapshots table: unique version numbers, status moves, and the publish lock."""

from __future__ import annotations

import threading

import pytest

from ledger import snapshots
from ledger.db import connect


def test_concurrent_allocations_never_share_a_version(make_settings):
    s = make_settings()
    got: list[int] = []

    def allocate() -> None:
        with connect(s, autocommit=True) as conn:
            for _ in range(5):
                got.append(snapshots.allocate_version(conn, None))

    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got) == list(range(1, 21))


def test_allocation_stays_above_versions_already_on_disk(db):
    assert snapshots.allocate_version(db, 7, at_least=41) == 42
    assert snapshots.allocate_version(db, 8) == 43
    assert [(r.version, r.run_id, r.status) for r in snapshots.list_snapshots(db)] == [
        (43, 8, "writing"), (42, 7, "writing")]


def test_publishing_records_the_manifest_and_only_once(db):
    v = snapshots.allocate_version(db, None)
    with snapshots.publishing(db, "x", v, rows=3, size=100, manifest={"version": v}):
        pass
    (rec,) = snapshots.list_snapshots(db)
    assert (rec.status, rec.rows, rec.bytes) == ("published", 3, 100) and rec.published_at
    assert snapshots.get_manifest(db, v) == {"version": v}
    with pytest.raises(ValueError, match="not being written"), \
            snapshots.publishing(db, "x", v, rows=3, size=100, manifest={}):
        pass


def test_a_failure_inside_publishing_leaves_the_version_writing(db):
    v = snapshots.allocate_version(db, None)
    with pytest.raises(RuntimeError), \
            snapshots.publishing(db, "x", v, rows=1, size=1, manifest={}):
        raise RuntimeError("pointer switch failed")
    assert snapshots.list_snapshots(db)[0].status == "writing"
    assert snapshots.mark_failed(db, [v], "pointer switch failed") == [v]
    assert snapshots.mark_failed(db, [v], "again") == []  # only 'writing' rows move
    snapshots.mark_deleted(db, [v])
    assert snapshots.list_snapshots(db)[0].status == "deleted"


def test_upgrading_a_0001_ledger_adds_the_snapshots_table(make_settings):
    from ledger.schema import upgrade

    s = make_settings(migrate=False)
    assert upgrade(s, "0001") == (None, "0001")
    before, after = upgrade(s)
    assert before == "0001" and after >= "0002"
    with connect(s, autocommit=True) as conn:
        assert snapshots.allocate_version(conn, None) == 1
