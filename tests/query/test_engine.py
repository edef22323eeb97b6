"""The engine as a whole: facets, diff, streams, thread safety under publishing, no PostgreSQL."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from query import Engine, QuerySpec, UnknownField, UnknownGroup
from query.errors import BadValue
from tests.query.conftest import FEATURES_V1, feature, ts, write_version

ROOT = Path(__file__).resolve().parents[2]


def test_facets_count_values_under_the_filters(engine: Engine) -> None:
    f = engine.facets(QuerySpec(filters=(("mcc", "450"),)), ["status", "operator", "notes"],
                      top=2)
    assert f.version == 2 and f.total == 6
    assert [(v.value, v.count) for v in f["status"].values] == [("enabled", 6)]
    assert f["status"].other == 0
    assert [(v.value, v.count) for v in f["operator"].values] == [("SK Telecom", 2),
                                                                  ("SK텔레콤", 2)]
    assert f["operator"].other == 2
    # most frequent first (a missing value is counted too), ties by value
    assert [(v.value, v.count) for v in f["notes"].values] == [(None, 2), ("\ttabbed", 1)]


def test_facets_on_a_group_with_search(engine: Engine) -> None:
    f = engine.facets(QuerySpec(feature_group="esim", q="450"), ["name"], top=10)
    assert f.total == 0  # search looks in name, value, notes, operator: not in mcc
    f = engine.facets(QuerySpec(feature_group="esim"), ["name", "updated_at"], top=10)
    assert [(v.value, v.count) for v in f["feature_name"].values] == [("eSIM", 2),
                                                                      ("eSIM Watch", 1)]
    assert f["last_changed_at"].values[0].value == ts(7) and f["last_changed_at"].values[0].count == 2


@pytest.mark.parametrize(("columns", "top", "error"), [
    (["nope"], 5, UnknownField), (["status"], 0, BadValue), (["status"], 1001, BadValue),
])
def test_facet_errors(engine: Engine, columns: list[str], top: int, error: type) -> None:
    with pytest.raises(error):
        engine.facets(QuerySpec(), columns, top=top)


def test_diff_between_versions(engine: Engine) -> None:
    d = engine.diff(1, 2)
    assert (d.from_version, d.to_version, d.added, d.removed, d.changed) == (1, 2, 1, 1, 2)
    rows = d.rows.to_pylist()
    assert [(r["change"], r["feature_group"], r["feature_name"], r["mcc"], r["mnc"],
             r["changed_fields"]) for r in rows] == [
        ("removed", "rcs", "RCS", "262", "01", None),
        ("added", "rcs", "RCS", "440", "10", None),
        ("changed", "volte", "VoLTE", "450", "05", ["notes"]),
        ("changed", "volte", "VoLTE", "450", "08", ["status"]),
    ]
    import json

    changed = rows[3]
    assert json.loads(changed["before_json"])["status"] == "disabled"
    assert json.loads(changed["after_json"])["status"] == "enabled"
    assert rows[0]["after_json"] is None and rows[1]["before_json"] is None


def test_diff_defaults_to_current_and_filters_by_group(engine: Engine) -> None:
    d = engine.diff(1, feature_group="volte", limit=1)
    assert (d.to_version, d.added, d.removed, d.changed, d.rows.num_rows) == (2, 0, 0, 2, 1)
    assert engine.diff(2, 2).rows.num_rows == 0
    with pytest.raises(UnknownGroup):
        engine.diff(1, feature_group="nope")


def test_diff_with_a_group_only_on_one_side(root: Path,
                                            open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    write_version(root, 2, [r for r in FEATURES_V1 if r["feature_group"] != "001"])
    d = open_engine(root).diff(1, 2, feature_group="001")
    assert (d.added, d.removed, d.changed) == (0, 1, 0)


def test_stream_reads_lazily_in_batches(engine: Engine) -> None:
    with engine.stream(QuerySpec(order=("-updated_at",)), batch_rows=3) as s:
        batches = list(s.reader)
    assert s.version == 2 and sum(b.num_rows for b in batches) == 10
    whole = engine.query(QuerySpec(order=("-updated_at",), limit=100)).rows
    assert [r for b in batches for r in b.to_pylist()] == whole.to_pylist()


def test_stream_honours_limit_and_offset(engine: Engine) -> None:
    with engine.stream(QuerySpec(limit=3, offset=2)) as s:
        got = s.reader.read_all()
    assert got.to_pylist() == engine.query(QuerySpec(limit=3, offset=2)).rows.to_pylist()


@pytest.mark.parametrize("table", ["features", "changes", "runs", "daily_counts", "name_map",
                                   "mcc_mnc_map"])
def test_every_table_counts_and_pages(engine: Engine, table: str) -> None:
    total = engine.count(QuerySpec(table=table))
    r = engine.query(QuerySpec(table=table, limit=1))
    assert r.total == total > 0 and r.rows.num_rows == 1
    assert (r.next_cursor is None) == (total == 1)


def test_count_without_total(engine: Engine) -> None:
    assert engine.query(QuerySpec(), count=False).total is None


def _rows_for(version: int) -> list[dict]:
    """Version k: the 10 base features plus k extra ones, every row marked last_run_id = k."""
    rows = [dict(r, last_run_id=version) for r in FEATURES_V1]
    rows += [feature("extra", f"Extra {i:03d}", "450", "05", "enabled", None, None, None,
                     None, ts(9), run=version) for i in range(version)]
    return rows


def test_publish_while_8_readers_query(root: Path, open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, _rows_for(1))
    engine = open_engine(root, duckdb_threads=2)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[int] = set()
    results = [0]

    def reader(i: int) -> None:
        while not stop.is_set():
            try:
                if i % 2:
                    r = engine.query(QuerySpec(limit=1000, order=("-updated_at",)))
                    rows, total = r.rows, r.total
                    version = r.version
                else:
                    with engine.stream(QuerySpec()) as s:
                        rows, version = s.reader.read_all(), s.version
                    total = rows.num_rows
                marks = set(rows.column("last_run_id").to_pylist())
                assert marks == {version}, (version, marks)
                assert rows.num_rows == total == 10 + version, (version, total)
                seen.add(version)
                results[0] += 1
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for version in range(2, 13):
            time.sleep(0.05)
            write_version(root, version, _rows_for(version))
        deadline = time.monotonic() + 15  # readers pick up the last version (slow machines too)
        while 12 not in seen and not errors and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert len(seen) >= 3 and max(seen) == 12
    assert results[0] > 50


def test_the_query_room_imports_no_postgresql_code() -> None:
    allowed_roots = {"duckdb", "pyarrow", "openpyxl", "query", "lake", "fmw"}
    allowed_internal = {"lake.layout", "lake.manifest", "fmw.errors", "fmw.settings",
                        "fmw.safejson", "fmw.authconfig"}
    for path in sorted((ROOT / "query").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods = [node.module]
            for mod in mods:
                top = mod.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                assert top in allowed_roots, f"{path.name} imports {mod}"
                if top in ("lake", "fmw"):
                    assert mod in allowed_internal, f"{path.name} imports {mod}"


def test_queries_work_with_postgresql_unreachable(shared_root: Path, tmp_path: Path) -> None:
    code = f"""
import sys
from fmw.settings import load_settings
from query import Engine, QuerySpec
s = load_settings(None, {str(tmp_path)!r})
from dataclasses import replace
s = replace(s, snapshots_dir=__import__("pathlib").Path({str(shared_root)!r}))
with Engine(s) as e:
    r = e.query(QuerySpec.from_params({{"mcc": "450"}}))
    out = b"".join(e.export(QuerySpec(), "csv").chunks)
    print(r.total, len(out) > 0, e.sql("select count(*) from features").rows.num_rows)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "sqlalchemy", "ledger",
                                                           "alembic", "pgserver"))
print(bad)
"""
    env = {**os.environ, "FMW_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["6 True 1", "[]"]


def test_a_stream_closed_early_releases_its_workers(engine: Engine) -> None:
    before = threading.active_count()
    for _ in range(5):
        s = engine.stream(QuerySpec(), batch_rows=1)
        next(iter(s.reader))
        s.close()
    export = engine.export(QuerySpec(), "csv")
    next(export.chunks)
    export.chunks.close()  # type: ignore[attr-defined]  # a client that went away
    assert threading.active_count() <= before
    assert engine.count(QuerySpec()) == 10
