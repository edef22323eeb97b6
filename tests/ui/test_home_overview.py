"""Home and Overview through Streamlit's AppTest, over a real synced and published snapshot."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from fmw.settings import Settings
from ledger.db import connect
from ledger.reports import runs_summary
from query import QuerySpec
from tests.ui.conftest import TOTAL, UiEnv, page_app
from ui import context, reads
from ui.viewstate import ViewState

pytestmark = pytest.mark.usefixtures("use_env")


def texts(at) -> list[str]:
    return [m.value for m in at.markdown]


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_home_cards_are_the_api_summary_figures(ui_env: UiEnv):
    at = page_app("home").run()
    assert not at.exception and not errors(at)
    tz = ui_env.settings.timezone
    with connect(ui_env.settings, autocommit=True) as conn:
        expected = {days: runs_summary(conn, tz, days, True).totals for days in (1, 7, 14, 30)}
        expected_yday = runs_summary(conn, tz, 1, False).totals
    cards = {m.label: m.value for m in at.metric
             if m.label in ("Created", "Updated", "Deleted", "Errors")}  # not the ops row
    week = expected[7]
    assert cards == {"Created": f"{week['created']:,}", "Updated": f"{week['updated']:,}",
                     "Deleted": f"{week['deleted']:,}", "Errors": f"{week['errors']:,}"}
    assert (week["created"], week["updated"], week["deleted"]) == (TOTAL + 1, 4, 2)
    assert week["errors"] >= 1  # the bad row of day 1
    today = datetime.now(ZoneInfo(tz)).date()
    data = reads.home_data(context.engine(ui_env.settings), ui_env.versions[1], today)
    by_label = {w.label: w.totals for w in data.windows}
    for label, days in (("Today", 1), ("7 days", 7), ("14 days", 14), ("30 days", 30)):
        assert {k: by_label[label][k] for k in expected[days]} == expected[days]
    assert {k: by_label["Yesterday"][k] for k in expected_yday} == expected_yday
    at.segmented_control(key="home_period").set_value("Today").run()
    assert {m.label: m.value for m in at.metric}["Updated"] == f"{expected[1]['updated']:,}"


def test_home_shows_the_last_sync_and_a_fresh_snapshot(ui_env: UiEnv):
    at = page_app("home").run()
    md = " ".join(texts(at))
    assert f"Run **{ui_env.runs[1]}**" in md
    assert "fresh" in md and "stale" not in md
    assert f"v{ui_env.versions[1]:06d}" in md


def test_home_turns_red_when_the_snapshot_is_older_than_the_threshold(ui_env: UiEnv):
    import dataclasses

    from ui.config import ui_config
    context.use(ui_env.settings, dataclasses.replace(ui_config(ui_env.settings),
                                                     stale_hours=0.0001))
    at = page_app("home").run()
    md = " ".join(texts(at))
    assert ":red-badge" in md and "stale" in md and "is older than" in md


@pytest.mark.parametrize("name", ["home", "overview", "feature", "history", "sql"])
def test_without_a_snapshot_every_page_says_how_to_publish_the_first(tmp_path: Path, name):
    context.use(Settings(data_dir=tmp_path / "d", snapshots_dir=tmp_path / "empty"))
    at = page_app(name).run()
    assert not at.exception
    assert any("No snapshot has been published yet" in i.value for i in at.info)
    assert not at.dataframe


def overview(**params: str | list[str]):
    at = page_app("overview")
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def test_overview_lists_every_feature_with_a_total(ui_env: UiEnv):
    at = overview()
    assert not at.exception and not errors(at)
    day2_total = TOTAL - 2 + 1
    assert any(t.startswith(f"**{day2_total:,}** feature(s) match") for t in texts(at))
    assert len(at.dataframe[0].value) == day2_total  # one page of 100


def test_a_status_filter_from_the_url_filters_and_counts_facets(ui_env: UiEnv):
    at = overview(status="disabled", feature_group="volte")
    engine = context.engine(ui_env.settings)
    want = engine.count(QuerySpec(feature_group="volte", filters=(("status", "disabled"),)))
    assert len(at.dataframe[0].value) == want
    assert set(at.dataframe[0].value["status"]) == {"disabled"}
    status = at.sidebar.multiselect(key="ov_status")
    assert status.value == ["disabled"]
    # counts beside the choices: status counted without its own filter (the whole group)
    volte = engine.facets(QuerySpec(feature_group="volte"), ["status"])["status"]
    assert {f"{v.value} · {v.count:,}" for v in volte.values} == set(status.options)


def test_choosing_a_filter_updates_the_table_and_the_shareable_url(ui_env: UiEnv):
    at = overview()
    country = "Saint Helena, Ascension and Tristan da Cunha"
    at.sidebar.multiselect(key="ov_country").select(country).run()
    rows = at.dataframe[0].value
    engine = context.engine(ui_env.settings)
    want = engine.count(QuerySpec(filters=(("country", country.replace(",", "\\,")),)))
    assert len(rows) == want > 0 and set(rows["country"]) == {country}
    assert at.query_params["country"] in ([country.replace(",", "\\,")],
                                          country.replace(",", "\\,"))
    # the URL opens the same view in a new session
    again = overview(country=country.replace(",", "\\,"))
    assert again.dataframe[0].value.equals(rows)


def test_paging_is_server_side_and_matches_the_full_order(ui_env: UiEnv):
    engine = context.engine(ui_env.settings)
    cols = ("identity_hash",)
    everything = engine.query(QuerySpec(columns=cols, limit=1000)).rows.column(0).to_pylist()
    at = overview(size="25", columns="identity_hash,feature_name")
    assert at.dataframe[0].value["identity_hash"].tolist() == everything[:25]
    at.button(key="ov_next").click().run()
    assert at.dataframe[0].value["identity_hash"].tolist() == everything[25:50]
    assert at.query_params["page"] in ("2", ["2"])
    at = overview(size="25", page="3", columns="identity_hash")
    assert at.dataframe[0].value["identity_hash"].tolist() == everything[50:75]


def test_the_column_picker_and_sort_are_applied(ui_env: UiEnv):
    at = overview(columns="feature_name,mcc,status", order="-mcc")
    frame = at.dataframe[0].value
    assert list(frame.columns) == ["feature_name", "mcc", "status"]
    assert frame["mcc"].tolist() == sorted(frame["mcc"].tolist(), reverse=True)


@pytest.mark.parametrize(("params", "message"), [
    ({"mcc": "45"}, "MCC '45' is not 3 digits"),
    ({"feature_group": "nope"}, "unknown feature group 'nope'"),
    ({"owner__bogus": "x"}, "unknown operator 'bogus'"),
    ({"last_changed_at__gte": "yesterday"}, "bad value 'yesterday' for last_changed_at__gte"),
    ({"columns": "feature_name,nope"}, "unknown column(s) nope"),
])
def test_a_bad_filter_value_says_why(ui_env: UiEnv, params, message):
    at = overview(**params)
    assert not at.exception
    assert any(message in e for e in errors(at)), errors(at)
    assert not at.dataframe


def test_a_bad_page_in_a_link_is_a_warning_and_the_first_page_is_shown(ui_env: UiEnv):
    at = overview(page="zero")
    assert any("page='zero' is not a whole number" in w.value for w in at.warning)
    assert not errors(at) and len(at.dataframe[0].value) > 0
    at.run()
    assert not at.warning  # said once; the URL no longer has it


def test_an_empty_result_says_so(ui_env: UiEnv):
    at = overview(q="no-such-feature-anywhere")
    assert any("No feature matches" in i.value for i in at.info)


def export_state() -> tuple[ViewState, list[str]]:
    state = ViewState(group="volte").with_choice("status", ["enabled", "testing"])
    return state, ["feature_name", "mcc", "mnc", "status", "country", "operator"]


def test_csv_export_is_exactly_the_filtered_view_with_a_bom(ui_env: UiEnv):
    engine = context.engine(ui_env.settings)
    state, columns = export_state()
    version = ui_env.versions[1]
    data = reads.export_bytes(engine, version, state.spec(paged=False, columns=columns), "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data[3:].decode("utf-8"))))
    assert rows[0] == columns
    expected = engine.query(state.spec(columns=columns), version=version)
    assert len(rows) - 1 == expected.total
    assert [r[0] for r in rows[1:]] == expected.rows.column("feature_name").to_pylist()
    assert all(r[3] in ("enabled", "testing") for r in rows[1:])


def test_xlsx_export_holds_the_same_rows(ui_env: UiEnv):
    engine = context.engine(ui_env.settings)
    state, columns = export_state()
    data = reads.export_bytes(engine, ui_env.versions[1], state.spec(paged=False,
                                                                      columns=columns), "xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
    values = list(ws.values)
    assert list(values[0]) == columns
    total = engine.count(state.spec(paged=False, columns=columns))
    assert len(values) - 1 == total
