"""Feature, History and SQL through Streamlit's AppTest, over a real snapshot."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from query import QuerySpec
from tests.ui.conftest import UiEnv, page_app
from ui import context
from ui.config import ui_config
from ui.diffview import field_rows
from ui.feature import matrix

pytestmark = pytest.mark.usefixtures("use_env")


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_feature_matrix_shows_every_operator_and_its_status(ui_env: UiEnv):
    at = page_app("feature")
    at.query_params["feature_name"] = "Feature 01"
    at.query_params["feature_group"] = "vonr"
    at.run()
    assert not at.exception and not errors(at)
    grid = at.dataframe[0].value
    engine = context.engine(ui_env.settings)
    rows = engine.query(QuerySpec(feature_group="vonr", filters=(("feature_name", "Feature 01"),),
                                  limit=100)).rows.to_pylist()
    assert len(grid) == len(rows) == 5  # i = 7 of the group is "Feature 01 한국어"
    statuses = {r["status"] for r in rows}
    assert set(grid.columns) == {"operator", "country", "network", *statuses}
    for r in rows:
        line = grid[grid["network"] == f"{r['mcc']}-{r['mnc']}"]
        assert line[r["status"]].tolist() == [1]


def test_the_matrix_pivots_operators_by_status():
    rows = pd.DataFrame([
        {"feature_group": "g", "operator": "A", "country": "X", "mcc": "001", "mnc": "01",
         "status": "enabled", "identity_hash": "1"},
        {"feature_group": "g", "operator": None, "country": None, "mcc": "001", "mnc": "02",
         "status": None, "identity_hash": "2"},
    ])
    table = matrix(rows)
    assert table.to_dict("records") == [
        {"operator": "(unknown operator)", "country": "", "network": "001-02",
         "(no status)": 1, "enabled": 0},
        {"operator": "A", "country": "X", "network": "001-01", "(no status)": 0, "enabled": 1},
    ]


def test_a_rows_timeline_lists_its_changes_oldest_first(ui_env: UiEnv):
    engine = context.engine(ui_env.settings)
    row = engine.query(QuerySpec(feature_group="rcs", filters=(("feature_name", "Feature 00"),
                                                               ("mcc", "450"), ("mnc", "08")))
                       ).rows.to_pylist()[0]
    at = page_app("feature")
    at.query_params.update(feature_group="rcs", feature_name="Feature 00",
                           identity=row["identity_hash"])
    at.run()
    titles = [e.label for e in at.expander]
    assert len(titles) == 2 and "Created" in titles[0] and "Updated" in titles[1]
    assert "status" in titles[1]
    diff = at.dataframe[-1].value
    assert "status" in diff["field"].tolist()


def test_history_lists_changes_and_filters_by_kind(ui_env: UiEnv):
    at = page_app("history").run()
    assert not at.exception and not errors(at)
    table = at.dataframe[0].value
    assert set(table["change"]) == {"created", "updated", "deleted"}
    at.pills(key="hi_ops").set_value(["U"]).run()
    table = at.dataframe[0].value
    assert set(table["change"]) == {"updated"} and len(table) == 4
    assert at.query_params["op"] in ("U", ["U"])


def test_history_filters_by_run_and_group_and_shows_before_and_after(ui_env: UiEnv):
    at = page_app("history")
    at.query_params.update(run=str(ui_env.runs[1]), group="vonr")
    at.run()
    table = at.dataframe[0].value
    assert set(table["run"]) == {ui_env.runs[1]} and set(table["group"]) == {"vonr"}
    diff = at.dataframe[1].value
    changed = diff[diff["field"] == "value"]
    assert changed[["before", "after"]].values.tolist() == [["0", "9"]]
    assert any("Changed: value" in c.value for c in at.caption)


@pytest.mark.parametrize(("params", "message"), [
    ({"run": "abc"}, "Run 'abc' is not a run number"),
    ({"since": "yesterday"}, "are not YYYY-MM-DD"),
])
def test_history_says_why_a_filter_is_bad(ui_env: UiEnv, params, message):
    at = page_app("history")
    at.query_params.update(params)
    at.run()
    assert any(message in e for e in errors(at)), errors(at)


def test_two_snapshot_versions_are_compared(ui_env: UiEnv):
    at = page_app("history").run()
    assert not at.metric  # the comparison runs only when asked for
    at.segmented_control(key="hi_mode").set_value("Compare snapshot versions").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Added": "1", "Removed": "2", "Changed": "4"}
    diff = at.dataframe[0].value
    assert sorted(diff["change"].tolist()) == ["added"] + ["changed"] * 4 + ["removed"] * 2


def test_field_rows_highlight_only_real_changes():
    rows = field_rows({"status": "a", "mcc": "450", "last_run_id": 1},
                      {"status": "b", "mcc": "450", "last_run_id": 2})
    assert [(r["field"], r["changed"]) for r in rows] == [
        ("mcc", False), ("status", True), ("last_run_id", False)]
    created = field_rows({}, {"status": "a"})
    assert created == [{"field": "status", "before": None, "after": "a", "changed": False}]


def sql(at, text: str, limit: int | None = None):
    at.text_area(key="sql_text").set_value(text)
    if limit is not None:
        at.number_input(key="sql_limit").set_value(limit)
    return at.button[0].click().run()


def test_sql_runs_a_read_only_query_over_the_snapshot(ui_env: UiEnv):
    at = page_app("sql").run()
    sql(at, "SELECT feature_group, count(*) AS n FROM features GROUP BY ALL ORDER BY 1")
    assert not errors(at)
    frame = at.dataframe[0].value
    assert frame.to_dict("records") == [{"feature_group": "rcs", "n": 13},
                                        {"feature_group": "volte", "n": 28},
                                        {"feature_group": "vonr", "n": 24}]
    assert len(at.get("download_button")) == 3


def test_sql_stops_at_the_row_limit_and_says_so(ui_env: UiEnv):
    at = page_app("sql").run()
    sql(at, "SELECT * FROM features", limit=5)
    assert len(at.dataframe[0].value) == 5
    assert any("stopped at the row limit" in c.value for c in at.caption)


@pytest.mark.parametrize(("text", "message"), [
    ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    ("COPY features TO '/tmp/x.csv'", "only SELECT"),
    ("DROP VIEW features", "only SELECT"),
    ("SELECT 1; SELECT 2", "exactly one statement"),
    ("SET enable_external_access = true", "only SELECT"),
])
def test_sql_refuses_anything_but_one_read_only_query(ui_env: UiEnv, text, message):
    at = page_app("sql").run()
    sql(at, text)
    assert any(message in e for e in errors(at)), errors(at)
    assert not at.dataframe


@pytest.mark.parametrize(("text", "rows", "note"), [
    ("SELECT repeat('x', 100000) AS s FROM range(1000)", 10, "more rows exist"),
    ("SELECT repeat('x', 2000000) AS s", 0, "the first row alone is larger"),
])
def test_sql_stops_at_the_size_limit_and_says_so(ui_env: UiEnv, text, rows, note):
    """Issue 11 §5: one query's huge result drove the shared explorer process to 1.8 GB."""
    context.use(ui_env.settings, dataclasses.replace(ui_config(ui_env.settings),
                                                     sql_max_bytes=2**20))
    at = page_app("sql").run()
    sql(at, text)
    assert not errors(at), errors(at)
    assert len(at.dataframe[0].value) == rows
    assert any(f"stopped at the size limit (1 MB); {note}" in c.value for c in at.caption), \
        [c.value for c in at.caption]


def test_sql_has_a_time_limit(ui_env: UiEnv):
    context.use(ui_env.settings, dataclasses.replace(ui_config(ui_env.settings),
                                                     sql_timeout_s=0.5))
    at = page_app("sql").run()
    sql(at, "SELECT count(*) FROM range(100000000000) a")
    assert any("time limit" in e for e in errors(at)), errors(at)
