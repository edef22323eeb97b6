"""Publishing a snapshot from a real synced ledger, read back with pyarrow and DuckDB."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lake.export import FEATURE_SORT, PART, plan_snapshot
from lake.layout import PARTITION_COLUMN, TABLES, Layout, work_name
from lake.manifest import load_manifest, verify
from lake.publish import publish_snapshot
from ledger.schema import head_revision
from ledger.snapshots import get_manifest, list_snapshots
from tests.ledger.synced import GROUP_SIZES


def layout_of(ledger) -> Layout:
    return Layout(ledger.settings.snapshots_path)


def test_plan_names_one_file_per_group_and_one_per_other_table(tmp_path: Path):
    layout = Layout(tmp_path)
    plan = plan_snapshot(layout, 7, 3, {"rcs": 2, "volte": 5}, pid=42, token="ab")
    assert plan.work_dir == tmp_path / "tmp" / work_name(7, 42, "ab") == tmp_path / "tmp" / "v000007.42.ab"
    assert plan.final_dir == tmp_path / "versions" / "v000007"
    assert [(f.table, f.path, f.group, f.rows) for f in plan.files] == [
        ("features", "features/feature_group=rcs/part-0.parquet", "rcs", 2),
        ("features", "features/feature_group=volte/part-0.parquet", "volte", 5),
        ("changes", "changes/part-0.parquet", None, None),
        ("runs", "runs/part-0.parquet", None, None),
        ("daily_counts", "daily_counts/part-0.parquet", None, None),
        ("name_map", "name_map/part-0.parquet", None, None),
        ("mcc_mnc_map", "mcc_mnc_map/part-0.parquet", None, None),
    ]
    assert plan.feature_rows == 7


def test_publish_after_sync_writes_hive_partitioned_sorted_zstd_parquet(ledger):
    m = publish_snapshot(ledger.settings, None)
    layout = layout_of(ledger)
    vdir = layout.version_dir(m.version)
    assert layout.read_pointer() == m.version == 1
    assert sorted(p.name for p in (vdir / "features").iterdir()) == sorted(
        f"{PARTITION_COLUMN}={g}" for g in GROUP_SIZES)
    db_groups = dict(ledger.conn.execute(
        "SELECT feature_group, count(*) FROM features GROUP BY 1").fetchall())
    assert m.tables["features"].groups == db_groups == GROUP_SIZES
    for group, n in GROUP_SIZES.items():
        path = vdir / "features" / f"{PARTITION_COLUMN}={group}" / PART
        meta = pq.read_metadata(path)
        assert meta.num_rows == n and meta.num_row_groups == 1  # one row group per small group
        assert meta.row_group(0).column(0).compression == "ZSTD"
        t = pq.read_table(path)
        assert PARTITION_COLUMN not in t.column_names
        keys = list(zip(*(t.column(c).to_pylist() for c in FEATURE_SORT), strict=True))
        assert keys == sorted(keys)  # byte order == Python's code point order
    con = duckdb.connect()
    got = dict(con.execute(
        f"SELECT feature_group, count(*) FROM read_parquet('{vdir.as_posix()}/features/*/*.parquet', "
        "hive_partitioning = true) GROUP BY 1").fetchall())
    assert got == GROUP_SIZES
    for table in TABLES[1:]:
        (n,) = con.execute(f"SELECT count(*) FROM read_parquet('{vdir.as_posix()}/{table}/*.parquet')"
                           ).fetchall()[0]
        assert n == m.tables[table].rows
        assert n == ledger.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_manifest_records_run_revision_schema_counts_and_checksums(ledger):
    r2 = ledger.sync()
    m = publish_snapshot(ledger.settings, r2.run_id)
    vdir = layout_of(ledger).version_dir(m.version)
    assert load_manifest(vdir) == m
    assert m.run_id == r2.run_id and m.ledger_revision == head_revision()
    assert m.changes_window_days == ledger.settings.changes_window_days == 90
    assert verify(vdir, m) == []
    on_disk = sorted(p.relative_to(vdir).as_posix() for p in vdir.rglob("*.parquet"))
    assert sorted(m.files) == on_disk and len(on_disk) == len(GROUP_SIZES) + len(TABLES) - 1
    cols = dict(m.tables["features"].columns)
    assert PARTITION_COLUMN not in cols and cols["attrs"] == "string"
    assert cols["last_changed_at"] == "timestamp[us, tz=UTC]"
    assert dict(m.tables["changes"].columns)["changed_fields"] == "list<item: string>"
    (rec,) = list_snapshots(ledger.conn)
    assert (rec.version, rec.run_id, rec.status, rec.rows) == (m.version, r2.run_id, "published",
                                                                sum(GROUP_SIZES.values()))
    assert rec.bytes == sum(f["bytes"] for f in m.files.values())
    assert get_manifest(ledger.conn, m.version) == json.loads(m.to_json())


def test_on_demand_publish_records_the_newest_run_that_changed_the_ledger(ledger):
    last = ledger.conn.execute("SELECT max(id) FROM runs").fetchone()[0]
    assert publish_snapshot(ledger.settings, None).run_id == last


def test_json_and_array_columns_are_plain_types_without_driver_metadata(ledger):
    m = publish_snapshot(ledger.settings, None)
    vdir = layout_of(ledger).version_dir(m.version)
    changes = pq.read_table(vdir / "changes" / PART)
    assert changes.schema.field("after_json").type == pa.string()
    assert changes.schema.field("changed_fields").type == pa.list_(pa.string())
    assert all(f.metadata is None for f in changes.schema)
    after = json.loads(changes.column("after_json")[0].as_py())
    assert after["feature_group"] in GROUP_SIZES
    runs = pq.read_table(vdir / "runs" / PART)
    assert json.loads(runs.column("phase_seconds")[0].as_py())


def test_changes_outside_the_window_are_left_out_and_rows_come_in_id_order(ledger):
    rows = [r for r in ledger.conn.execute("SELECT id FROM changes ORDER BY id").fetchall()]
    old = [r[0] for r in rows[:10]]
    ledger.conn.execute("UPDATE changes SET changed_at = now() - interval '91 days' "
                        "WHERE id = ANY(%s)", (old,))
    m = publish_snapshot(ledger.settings, None)
    ids = pq.read_table(layout_of(ledger).version_dir(m.version) / "changes" / PART).column("id")
    assert ids.to_pylist() == [r[0] for r in rows[10:]]
    assert m.tables["changes"].rows == len(rows) - 10


def test_versions_increase_and_each_version_folder_stays_as_published(ledger):
    first = publish_snapshot(ledger.settings, None)
    vdir = layout_of(ledger).version_dir(first.version)
    before = {p: p.read_bytes() for p in vdir.rglob("*") if p.is_file()}
    ledger.sync([r for r in _rows(ledger) if r[0] != "esim"])  # full mode: esim deleted
    second = publish_snapshot(ledger.settings, None)
    assert (first.version, second.version) == (1, 2)
    assert layout_of(ledger).read_pointer() == 2
    assert "esim" not in second.tables["features"].groups
    assert {p: p.read_bytes() for p in vdir.rglob("*") if p.is_file()} == before


def _rows(ledger):
    from tests.ledger.synced import extract_rows
    return extract_rows(GROUP_SIZES)


def test_two_concurrent_publishes_get_different_versions_and_both_succeed(ledger):
    results: list = []
    errors: list = []

    def publish() -> None:
        try:
            results.append(publish_snapshot(ledger.settings, None))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(m.version for m in results) == [1, 2, 3]
    layout = layout_of(ledger)
    assert layout.read_pointer() == 3 and layout.versions() == [1, 2, 3]
    assert sorted((r.version, r.status) for r in list_snapshots(ledger.conn)) == [
        (1, "published"), (2, "published"), (3, "published")]
    assert not any(layout.tmp_dir.iterdir())


def test_an_empty_ledger_publishes_an_empty_features_folder(make_settings, tmp_path):
    s = make_settings("", FMW_SNAPSHOTS_DIR=str(tmp_path / "snap"))
    m = publish_snapshot(s, None)
    vdir = Layout(s.snapshots_path).version_dir(m.version)
    assert m.run_id is None and m.tables["features"].rows == 0 and m.tables["features"].groups == {}
    assert (vdir / "features").is_dir() and not any((vdir / "features").iterdir())
    assert pq.read_metadata(vdir / "runs" / PART).num_rows == 0
