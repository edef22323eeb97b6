"""Analyst SQL: one read-only statement, row and time limits, no files outside the snapshots."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from query import BadValue, Engine, QueryTimeout, SqlRejected


@pytest.mark.parametrize(("sql", "rows"), [
    ("SELECT feature_group, count(*) AS n FROM features GROUP BY ALL ORDER BY 1",
     [{"feature_group": "001", "n": 1}, {"feature_group": "esim", "n": 3},
      {"feature_group": "rcs", "n": 2}, {"feature_group": "volte", "n": 4}]),
    ("WITH x AS (SELECT op FROM changes) SELECT op, count(*) AS n FROM x GROUP BY op ORDER BY op",
     [{"op": "C", "n": 1}, {"op": "U", "n": 2}]),
    ("FROM runs SELECT id ORDER BY id", [{"id": 1}, {"id": 2}]),
    ("SELECT sum(created) AS c FROM daily_counts", [{"c": 10}]),
    ("select count(*) as n from name_map join mcc_mnc_map on canonical = operator",
     [{"n": 1}]),
    ("  SELECT 1 AS one;  ", [{"one": 1}]),
])
def test_read_only_queries(engine: Engine, sql: str, rows: list) -> None:
    r = engine.sql(sql)
    assert r.rows.to_pylist() == rows and r.version == 2 and not r.truncated


@pytest.mark.parametrize("sql", ["DESCRIBE features", "SHOW TABLES", "SUMMARIZE runs"])
def test_describe_show_summarize(engine: Engine, sql: str) -> None:
    assert engine.sql(sql).rows.num_rows > 0


def test_show_tables_lists_the_views(engine: Engine) -> None:
    names = engine.sql("SHOW TABLES").rows.column("name").to_pylist()
    assert sorted(names) == ["changes", "daily_counts", "features", "mcc_mnc_map", "name_map",
                             "runs"]


def test_a_pinned_version(engine: Engine) -> None:
    assert engine.sql("SELECT count(*) AS n FROM features WHERE mcc = '262'",
                      version=1).rows.to_pylist() == [{"n": 1}]
    assert engine.sql("SELECT count(*) AS n FROM features WHERE mcc = '262'"
                      ).rows.to_pylist() == [{"n": 0}]


@pytest.mark.parametrize(("sql", "reason"), [
    ("SELECT 1; SELECT 2", "exactly one statement"),
    ("", "exactly one statement"),
    ("-- nothing", "exactly one statement"),
    ("CREATE TABLE x AS SELECT 1", "not CREATE"),
    ("INSERT INTO features SELECT * FROM features", "not INSERT"),
    ("DROP VIEW features", "not DROP"),
    ("COPY features TO '/tmp/out.csv'", "not COPY"),
    ("ATTACH '/tmp/x.db'", "not ATTACH"),
    ("SET threads = 8", "not SET"),
    ("PRAGMA enable_profiling", "not PRAGMA"),
    ("INSTALL httpfs", "not LOAD"),
    ("LOAD httpfs", "not LOAD"),
    ("CALL pragma_version()", "not CALL"),
    ("EXPLAIN SELECT 1", "not EXPLAIN"),
    ("UPDATE features SET status = 'x'", "not UPDATE"),
    ("DELETE FROM features", "not DELETE"),
    ("EXPORT DATABASE '/tmp/x'", "not EXPORT"),
    ("USE memory", "not SET"),
    ("SELEC 1", "Parser Error"),
])
def test_anything_but_one_query_is_rejected(engine: Engine, sql: str, reason: str) -> None:
    with pytest.raises(SqlRejected) as info:
        engine.sql(sql)
    assert reason in str(info.value)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_csv('{root}/../outside.csv')",
    "SELECT * FROM read_json('/proc/self/environ')",
])
def test_files_outside_the_snapshots_folder_cannot_be_read(engine: Engine, shared_root: Path,
                                                           sql: str) -> None:
    (shared_root.parent / "outside.csv").write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(SqlRejected) as info:
        engine.sql(sql.format(root=shared_root))
    assert "Permission Error" in str(info.value) or "disabled" in str(info.value)


def test_files_inside_the_snapshots_folder_can_be_read(engine: Engine, shared_root: Path) -> None:
    path = shared_root / "versions" / "v000002" / "runs" / "part-0.parquet"
    assert engine.sql(f"SELECT count(*) AS n FROM read_parquet('{path}')"
                      ).rows.to_pylist() == [{"n": 2}]


def test_configuration_is_locked_even_through_sql(engine: Engine) -> None:
    r = engine.sql("SELECT current_setting('enable_external_access') AS e, "
                   "current_setting('lock_configuration') AS l")
    assert r.rows.to_pylist() == [{"e": False, "l": True}]


def test_row_limit(engine: Engine) -> None:
    r = engine.sql("SELECT * FROM range(100)", limit=7)
    assert r.rows.num_rows == 7 and r.truncated
    r = engine.sql("SELECT * FROM range(7)", limit=7)
    assert r.rows.num_rows == 7 and not r.truncated


def test_time_limit_interrupts_the_query(engine: Engine) -> None:
    start = __import__("time").perf_counter()
    with pytest.raises(QueryTimeout) as info:
        engine.sql("SELECT count(*) FROM range(1000000000000) a, range(1000) b", timeout_s=0.3)
    assert info.value.timeout_s == 0.3
    assert __import__("time").perf_counter() - start < 5
    assert engine.sql("SELECT 1 AS x").rows.num_rows == 1  # the engine still works


@pytest.mark.parametrize(("kw", "field"), [
    ({"limit": 0}, "limit"), ({"timeout_s": 0}, "timeout_s"), ({"timeout_s": 3600}, "timeout_s"),
])
def test_limits_are_bounded(engine: Engine, kw: dict, field: str) -> None:
    with pytest.raises(BadValue) as info:
        engine.sql("SELECT 1", **kw)
    assert info.value.field == field


def test_write_catalog_gives_a_database_with_the_views(engine: Engine, tmp_path: Path) -> None:
    path = engine.write_catalog(tmp_path / "sub" / "fmw.duckdb", version=1)
    assert path.is_file() and not list(path.parent.glob(".*tmp*"))
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.sql("SELECT count(*) FROM features").fetchall() == [(10,)]
        assert con.sql("SELECT typeof(feature_group) FROM features WHERE feature_group = '001'"
                       ).fetchall() == [("VARCHAR",)]
        assert con.sql("SELECT version, name FROM snapshot_info").fetchall() == [(1,
                                                                                  "v000001")]
        assert con.sql("SELECT count(*) FROM changes").fetchall() == [(3,)]
    finally:
        con.close()
    engine.write_catalog(path)  # overwrite with the current version
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.sql("SELECT version FROM snapshot_info").fetchall() == [(2,)]
    finally:
        con.close()


def test_threads_memory_limit_and_spill_folder_come_from_settings(
        root: Path, tmp_path: Path, open_engine) -> None:
    from tests.query.conftest import FEATURES_V1, write_version

    write_version(root, 1, FEATURES_V1)
    engine = open_engine(root, duckdb_threads=1, duckdb_memory_limit="256MB")
    r = engine.sql("SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m,"
                   " current_setting('temp_directory') AS d").rows.to_pylist()[0]
    assert r["t"] == 1 and r["m"].startswith("244") and r["d"] == str(tmp_path / "tmp" / "duckdb")


def test_views_follow_new_versions_and_forget_deleted_ones(root: Path, open_engine) -> None:
    import shutil

    from tests.query.conftest import FEATURES_V1, features_v2, write_version

    write_version(root, 1, FEATURES_V1)
    engine = open_engine(root)
    assert engine.sql("SELECT count(*) AS n FROM features WHERE mcc = '262'").rows.to_pylist() \
        == [{"n": 1}]
    write_version(root, 2, features_v2())
    shutil.rmtree(root / "versions" / "v000001")
    assert engine.sql("SELECT count(*) AS n FROM features WHERE mcc = '262'").rows.to_pylist() \
        == [{"n": 0}]
    schemas = engine.sql("SELECT DISTINCT schema_name FROM duckdb_schemas() ORDER BY 1")
    assert "v000001" not in schemas.rows.column("schema_name").to_pylist()
    assert "v000002" in schemas.rows.column("schema_name").to_pylist()
