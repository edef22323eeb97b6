"""Row scopes in the query layer: every read of a scoped spec sees only the rows in scope, reads
only the scope's files, and the SQL page's views are restricted with no way around them."""

from __future__ import annotations

import csv
import io

import pytest

from fmw.authconfig import RoleRule
from query import Engine, QuerySpec
from query.errors import BadCursor, OutOfScope, SqlRejected, UnknownGroup
from query.scope import RowScope, ScopeRule, resolve_role

IMS = RowScope.of([ScopeRule.of(feature_groups=["volte"], mccs=["450"])])
IMS_AND_RCS = RowScope.of([ScopeRule.of(feature_groups=["volte"], mccs=["450"]),
                           ScopeRule.of(feature_groups=["rcs"])])
#: v2 rows in each scope: (group, name, mcc, mnc)
IN_IMS = {("volte", "VoLTE", "450", "05"), ("volte", "VoLTE", "450", "08"),
          ("volte", "VoLTE Roaming", "450", "05")}
IN_IMS_AND_RCS = IN_IMS | {("rcs", "RCS", "450", "06"), ("rcs", "RCS", "440", "10")}


def keys(engine: Engine, scope: RowScope, **spec: object) -> set[tuple[str, ...]]:
    res = engine.query(QuerySpec(scope=scope, limit=1000, **spec))  # type: ignore[arg-type]
    return {(r["feature_group"], r["feature_name"], r["mcc"], r["mnc"])
            for r in res.rows.to_pylist()}


@pytest.mark.parametrize("scope,expected", [(IMS, IN_IMS), (IMS_AND_RCS, IN_IMS_AND_RCS)])
def test_pages_counts_streams_and_exports_hold_only_rows_in_scope(
        engine: Engine, scope: RowScope, expected: set[tuple[str, ...]]) -> None:
    assert keys(engine, scope) == expected
    assert engine.query(QuerySpec(scope=scope)).total == len(expected)
    assert engine.count(QuerySpec(scope=scope)) == len(expected)
    assert engine.stream(QuerySpec(scope=scope)).reader.read_all().num_rows == len(expected)
    text = b"".join(engine.export(QuerySpec(scope=scope), "csv").chunks).decode()
    assert len(list(csv.DictReader(io.StringIO(text)))) == len(expected)
    # filters narrow the scope and never widen it
    assert keys(engine, scope, filters=(("mcc", "262"),)) == set()
    assert keys(engine, scope, q="eSIM") == set()
    # the unfiltered first page takes the fast path: it must still hold the scope
    first = engine.query(QuerySpec(scope=scope, limit=2))
    assert first.rows.num_rows == 2 and first.total == len(expected)


def test_facets_and_group_counts_count_only_rows_in_scope(engine: Engine) -> None:
    facets = engine.facets(QuerySpec(scope=IMS_AND_RCS), ["feature_group", "mcc"])
    assert facets.total == 5
    counts = {f.column: {v.value: v.count for v in f.values} for f in facets.facets}
    assert counts["feature_group"] == {"volte": 3, "rcs": 2}
    assert counts["mcc"] == {"450": 4, "440": 1}
    assert engine.groups(scope=IMS_AND_RCS) == {"rcs": 2, "volte": 3}
    assert engine.groups(scope=IMS) == {"volte": 3}


def test_a_scoped_spec_reads_only_its_groups_files(engine: Engine) -> None:
    _, prep = engine._prepare(QuerySpec(scope=IMS), None, None, page=True)
    assert prep.files and all("feature_group=volte" in f for f in prep.files)


def test_an_out_of_scope_group_is_unknown_and_the_error_lists_only_the_scope(
        engine: Engine) -> None:
    with pytest.raises(UnknownGroup) as caught:
        engine.query(QuerySpec(scope=IMS, feature_group="esim"))
    assert caught.value.valid == ("volte",)


def test_a_cursor_of_another_scope_is_refused(engine: Engine) -> None:
    page = engine.query(QuerySpec(limit=1))
    assert page.next_cursor is not None
    with pytest.raises(BadCursor, match="another query"):
        engine.query(QuerySpec(scope=IMS, limit=1, cursor=page.next_cursor))


def test_tables_a_scope_cannot_apply_to_are_refused(engine: Engine) -> None:
    for table in ("runs", "daily_counts", "name_map"):
        with pytest.raises(OutOfScope):
            engine.query(QuerySpec(table=table, scope=IMS))
    changes = engine.query(QuerySpec(table="changes", scope=RowScope.of(
        [ScopeRule.of(feature_groups=["esim"])]), limit=100))
    assert {r["feature_group"] for r in changes.rows.to_pylist()} == {"esim"}
    assert engine.query(QuerySpec(table="mcc_mnc_map", scope=IMS)).total == 4


def test_diffs_show_only_rows_in_scope(engine: Engine) -> None:
    everything = engine.diff(1, 2)
    assert (everything.added, everything.removed, everything.changed) == (1, 1, 2)
    ims = engine.diff(1, 2, scope=IMS)  # the two VoLTE 450 changes; not RCS added/removed
    assert (ims.added, ims.removed, ims.changed) == (0, 0, 2)
    rcs = engine.diff(1, 2, scope=RowScope.of([ScopeRule.of(feature_groups=["rcs"])]))
    assert (rcs.added, rcs.removed, rcs.changed) == (1, 1, 0)
    with pytest.raises(UnknownGroup):
        engine.diff(1, 2, feature_group="esim", scope=IMS)


def test_sql_of_a_scoped_user_reads_restricted_views(engine: Engine) -> None:
    res = engine.sql("WITH v AS (SELECT * FROM features) SELECT feature_group, count(*) AS n "
                     "FROM v LEFT JOIN mcc_mnc_map m USING (mcc, mnc) GROUP BY ALL ORDER BY 1",
                     scope=IMS_AND_RCS)
    assert res.rows.to_pylist() == [{"feature_group": "rcs", "n": 2},
                                      {"feature_group": "volte", "n": 3}]
    full = engine.sql("SELECT count(*) AS n FROM features")
    assert full.rows.to_pylist() == [{"n": 10}]


@pytest.mark.parametrize("text,words", [
    ("SELECT * FROM read_parquet('**/*.parquet')", "read_parquet()"),
    ("SELECT * FROM glob('*')", "glob()"),
    ("SELECT (SELECT count(*) FROM read_csv_auto('x.csv'))", "read_csv_auto()"),
    ("SELECT * FROM v000002.features", "v000002.features"),
    ("SELECT * FROM memory.v000002.features", "features"),
    ("SELECT * FROM 'snapshots/versions/v000002/features/x.parquet'", "parquet"),
    ("SELECT * FROM runs", "runs"),
    ("SELECT * FROM features WHERE EXISTS (SELECT 1 FROM daily_counts)", "daily_counts"),
    ("SELECT * FROM duckdb_tables()", "duckdb_tables()"),
    ("DESCRIBE features", "SELECT statements only"),
    ("SUMMARIZE features", "SELECT statements only"),
])
def test_sql_of_a_scoped_user_cannot_leave_its_views(engine: Engine, text: str,
                                                     words: str) -> None:
    with pytest.raises(SqlRejected) as caught:
        engine.sql(text, scope=IMS)
    assert words in str(caught.value)


def test_scope_values_are_quoted_in_views(engine: Engine) -> None:
    odd = RowScope.of([ScopeRule.of(operators=["O'Brien'); DROP VIEW features; --"])])
    assert engine.sql("SELECT count(*) AS n FROM features", scope=odd).rows.to_pylist() == [
        {"n": 0}]
    assert engine.sql("SELECT count(*) AS n FROM features").rows.to_pylist() == [{"n": 10}]


def test_roles_resolve_highest_first_and_scoped_rules_add_up() -> None:
    rules = [RoleRule("a", "admin"), RoleRule("v", "viewer"),
             RoleRule("s1", "scoped", feature_groups=("volte",), mccs=("450",)),
             RoleRule("s2", "scoped", feature_groups=("rcs",))]
    assert resolve_role(rules, ["s1", "a"]) == ("admin", None)
    assert resolve_role(rules, ["s1", "v"]) == ("viewer", None)
    assert resolve_role(rules, ["nothing"]) == (None, None)
    role, scope = resolve_role(rules, ["s1", "s2"])
    assert role == "scoped" and scope == IMS_AND_RCS
    assert resolve_role(rules, ["S1"]) == (None, None)  # names are exact
