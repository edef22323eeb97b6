"""Feature, History and SQL through Streamlit's AppTest, over a real snapshot."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

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
    assert set(grid.columns) == {"operator", "country", "network", "value", *statuses}
    for r in rows:
        line = grid[grid["network"] == f"{r['mcc']}-{r['mnc']}"]
        assert line[r["status"]].tolist() == [1]
        assert line["value"].tolist() == [r["value"] or ""]


def test_the_feature_grid_is_sized_to_its_rows_within_a_bound():
    """Issue 12 §2: the grid showed 8 of 466 operator rows in a 320 px box."""
    from ui.feature import GRID_MAX_PX, grid_height
    assert grid_height(5) == 40 + 5 * 35
    assert 320 < grid_height(466) == GRID_MAX_PX and grid_height(466) >= 40 + 35 * 16


def test_the_matrix_shows_value_and_sorts_operators_ignoring_case_unknown_last():
    """Issue 12 §2: the grid lacked `value` (codec, version…), and operators sorted by code
    point put "(unknown operator)" first and "kt" after "SKT"."""
    rows = pd.DataFrame([
        {"feature_group": "g", "operator": "SKT", "country": "Korea", "mcc": "450", "mnc": "05",
         "status": "enabled", "value": "EVS", "identity_hash": "1"},
        {"feature_group": "g", "operator": None, "country": None, "mcc": "001", "mnc": "02",
         "status": None, "value": None, "identity_hash": "2"},
        {"feature_group": "g", "operator": "kt", "country": "Korea", "mcc": "450", "mnc": "08",
         "status": "disabled", "value": "AMR-WB", "identity_hash": "3"},
        {"feature_group": "g", "operator": "AT&T", "country": "USA", "mcc": "310", "mnc": "410",
         "status": "enabled", "value": "v2", "identity_hash": "4"},
    ])
    table = matrix(rows)
    assert table["operator"].tolist() == ["AT&T", "kt", "SKT", "(unknown operator)"]
    assert table["value"].tolist() == ["v2", "AMR-WB", "EVS", ""]
    assert list(table.columns) == ["operator", "country", "network", "value", "(no status)",
                                   "disabled", "enabled"]


def test_the_feature_page_grid_has_value_and_its_height(ui_env: UiEnv):
    at = page_app("feature")
    at.query_params.update(feature_group="volte", feature_name="Feature 01")
    at.run()
    assert not at.exception and not errors(at)
    grid = at.dataframe[0].value
    assert "value" in grid.columns and set(grid["value"]) <= {"0", "1", "2"}


def test_the_matrix_pivots_operators_by_status():
    rows = pd.DataFrame([
        {"feature_group": "g", "operator": "A", "country": "X", "mcc": "001", "mnc": "01",
         "status": "enabled", "identity_hash": "1"},
        {"feature_group": "g", "operator": None, "country": None, "mcc": "001", "mnc": "02",
         "status": None, "identity_hash": "2"},
    ])
    table = matrix(rows)
    assert table.to_dict("records") == [
        {"operator": "A", "country": "X", "network": "001-01", "value": "", "(no status)": 0,
         "enabled": 1},
        {"operator": "(unknown operator)", "country": "", "network": "001-02", "value": "",
         "(no status)": 1, "enabled": 0},
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


def test_history_list_shows_before_and_after_of_the_changed_fields(ui_env: UiEnv):
    """Issue 12 §2: the list named the changed fields only; their values were one click away."""
    at = page_app("history")
    at.query_params.update(run=str(ui_env.runs[1]))
    at.run()
    table = at.dataframe[0].value
    by_change = table.groupby("change")["before → after"].apply(sorted).to_dict()
    assert by_change == {
        "updated": ["status: enabled → disabled", "status: enabled → disabled",
                    "status: testing → enabled", "value: 0 → 9"],
        "created": ["status: → testing · value: → 1"],
        "deleted": ["status: enabled → · value: 2 →", "status: testing → · value: 0 →"]}
    assert not any("None" in t for t in table["before → after"])


def test_empty_values_are_empty_not_none():
    from ui.diffview import change_summary
    rows = field_rows({"status": "a", "notes": None}, {"status": "b", "notes": "hello"})
    assert {r["field"]: (r["before"], r["after"]) for r in rows}["notes"] == ("", "hello")
    assert change_summary({"notes": None, "value": ""}, {"notes": "x", "value": "1"},
                          ["notes", "value"]) == "notes: → x · value: → 1"
    assert change_summary({"status": "on"}, None) == "status: on →"


def test_history_jumps_to_a_day_instead_of_paging(ui_env: UiEnv, monkeypatch):
    """Issue 12 §2: on a large ledger the only way back in time was 1,000 pages of Older."""
    from ui import history, timefmt
    monkeypatch.setattr(history, "PAGE_SIZE", 5)
    tz = ui_env.settings.timezone
    total = context.engine(ui_env.settings).count(QuerySpec(table="changes"))
    pages = -(-total // 5)
    at = page_app("history").run()
    assert at.number_input(key="hi_page").value == 1
    today = timefmt.today(tz)
    at.date_input(key="hi_jump").set_value(today - timedelta(days=1)).run()
    assert at.number_input(key="hi_page").value == pages  # every change is newer
    assert any("No change on or before" in i.value for i in at.info)
    at.date_input(key="hi_jump").set_value(today).run()
    assert at.number_input(key="hi_page").value == 1
    assert any(f"{today:%Y-%m-%d}: the newest change on or before it is row 1, on page 1"
               in i.value for i in at.info)
    at.number_input(key="hi_page").set_value(3).run()
    assert len(at.dataframe[0].value) == 5 and "page 3 of" in " ".join(
        c.value for c in at.caption)


def test_jump_page_counts_from_the_newest():
    from ui.history import jump_page
    assert [jump_page(n, 1000, 50) for n in (0, 49, 50, 999, 1000)] == [1, 1, 2, 20, 20]
    assert jump_page(0, 0, 50) == 1


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
    assert created == [{"field": "status", "before": "", "after": "a", "changed": False}]


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
