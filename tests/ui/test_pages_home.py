"""Issue 12 §4, Home: change figures formatted, the 30-day chart drawing today's bar and
scaled to the days with data, and an SLA card that says it cannot know while PostgreSQL is down.

Home reads its figures through `ui.cache.home` and the usage recorder; these tests give it
hand-made figures (a million created rows, two busy days) and a ledger that goes away.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from ledger.explorer import SlaViolation, UsageSummary
from tests.ui.conftest import UiEnv, page_app
from ui import cache, home, timefmt
from ui.reads import ALL_COUNT_FIELDS, COUNT_FIELDS, TREND_DAYS, HomeData, Window
from ui.usage import UsageRecorder

pytestmark = pytest.mark.usefixtures("use_env")


def figures(today: date, busy: dict[date, int]) -> HomeData:
    """Home's data with `busy` days (created rows per day) and nothing else."""
    def totals(first: date, last: date) -> dict[str, int]:
        out = dict.fromkeys(ALL_COUNT_FIELDS, 0)
        out["created"] = sum(n for d, n in busy.items() if first <= d <= last)
        return out

    windows = []
    for label, days in (("Today", 1), ("7 days", 7), ("30 days", 30)):
        first = today - timedelta(days=days - 1)
        windows.append(Window(label, days, first, today, totals(first, today),
                              totals(first - timedelta(days=days), first - timedelta(days=1))))
    shown = [today - timedelta(days=i) for i in range(TREND_DAYS - 1, -1, -1)]
    trend = pa.table({"day": pa.array(shown, pa.date32()),
                      **{k: pa.array([busy.get(d, 0) if k == "created" else 0 for d in shown],
                                     pa.int64()) for k in COUNT_FIELDS}})
    return HomeData(0, today, tuple(windows), trend, None)


class Ledger:
    """The recorder's ledger: answers until `down` is set, then refuses like a dead server."""

    def __init__(self, sla: list[SlaViolation]) -> None:
        self.sla = sla
        self.down = False

    def write(self, counts: Any) -> None:
        if self.down:
            raise ConnectionError("connection refused")

    def read(self, today: date) -> tuple[UsageSummary, list[SlaViolation]]:
        if self.down:
            raise ConnectionError("connection refused")
        return UsageSummary(today, (), 0, 0, 0), self.sla


@pytest.fixture
def today(ui_env: UiEnv) -> date:
    return timefmt.today(ui_env.settings.timezone)


def test_change_figures_are_formatted(monkeypatch, today: date):
    data = figures(today, {today: 1_010_000})
    monkeypatch.setattr(cache, "home", lambda c, version, day: data)
    at = page_app("home").run()
    assert not at.exception
    at.segmented_control(key="home_period").set_value("Today").run()
    created = next(m for m in at.metric if m.label == "Created")
    assert (created.value, created.delta) == ("1,010,000", "1,010,000")
    assert home.delta_text(-5_000) == "-5,000" and home.delta_text(0) == "0"


def chart_of(at) -> tuple[dict[str, Any], list[str]]:
    """The Vega-Lite spec of Home's trend and the days its data holds."""
    chart = at.get("vega_lite_chart")[0].proto
    spec = json.loads(chart.spec)
    from streamlit import dataframe_util
    frames = [dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data)
              for d in chart.datasets] or [
        dataframe_util.convert_arrow_bytes_to_pandas_df(chart.data.data)]
    days = sorted({str(d)[:10] for f in frames for d in f["day"]})
    return spec, days


def test_the_trend_draws_todays_bar_and_starts_at_the_first_busy_day(monkeypatch, today: date):
    busy = {today - timedelta(days=10): 20, today: 7}
    data = figures(today, busy)
    monkeypatch.setattr(cache, "home", lambda c, version, day: data)
    at = page_app("home").run()
    assert not at.exception
    spec, days = chart_of(at)
    # one whole band per day (a time axis centres bars on midnight and cuts today's in half)
    assert spec["encoding"]["x"]["type"] == "ordinal"
    assert days == [f"{today - timedelta(days=i):%Y-%m-%d}" for i in range(10, -1, -1)]
    # one busy day: still a week, so its bar is not as wide as the page
    data = figures(today, {today: 7})
    at.run()
    assert chart_of(at)[1] == [f"{today - timedelta(days=i):%Y-%m-%d}" for i in range(6, -1, -1)]


def test_a_quiet_month_says_so_instead_of_an_empty_chart(monkeypatch, today: date):
    data = figures(today, {})
    monkeypatch.setattr(cache, "home", lambda c, version, day: data)
    at = page_app("home").run()
    assert len(at.get("vega_lite_chart")) == 1  # the explorer's usage, in its expander
    assert any("No change in the last 30 days" in i.value for i in at.info)


@pytest.mark.parametrize("open_violations", [0, 1])
def test_with_postgresql_down_the_sla_card_cannot_know(monkeypatch, open_violations: int):
    """Issue 12 §4: after the ledger went away the card kept saying "none open"."""
    sla = [SlaViolation(1, "freshness", "stale", datetime(2026, 12, 7, 1, 0, tzinfo=UTC), 30.0,
                        26.0, "snapshot 30 h old")][:open_violations]
    ledger = Ledger(sla)
    rec = UsageRecorder(ledger, "UTC", flush_s=0)
    monkeypatch.setattr(home, "recorder", lambda settings, ui: rec)
    assert rec.refresh()
    at = page_app("home").run()
    md = " ".join(m.value for m in at.markdown)
    assert ("none open" in md) == (not open_violations)
    ledger.down = True
    assert not rec.refresh()
    at.run()
    md = " ".join(m.value for m in at.markdown)
    assert "none open" not in md and "open" not in md.replace("open SLA", "")
    assert "Not known: the ledger (PostgreSQL) is not reachable right now." in md
    last = " ".join(c.value for c in at.caption)
    assert f"{open_violations or 'none'} open then" in last


class OpsLedger(Ledger):
    def __init__(self, ops: Any) -> None:
        super().__init__([])
        self.ops = ops

    def read_ops(self, today_start: datetime) -> Any:
        if self.down:
            raise ConnectionError("connection refused")
        return self.ops


def test_home_shows_bad_rows_incidents_and_the_api_p95(monkeypatch):
    """Issue 13: Home shows open bad rows (new/fixed today), this month's incidents and
    downtime, and the v1 p95 of the last 24 h, as the ledger keeps them."""
    from ledger.explorer import OpsFigures
    ops = OpsFigures(problems_open=8, problems_new_today=0, problems_fixed_today=2,
                     oldest_problem="a: MCC '45' is not 3 digits", incidents_month=1,
                     downtime_month_s=5400.0, incidents_open=0, p95_24h_ms=250.0,
                     requests_24h=12_345)
    rec = UsageRecorder(OpsLedger(ops), "UTC", flush_s=0)
    monkeypatch.setattr(home, "recorder", lambda settings, ui: rec)
    assert rec.refresh()
    at = page_app("home").run()
    metrics = {m.label: (m.value, m.delta) for m in at.metric}
    assert metrics["Bad rows open"] == ("8", "0 new, 2 fixed today")
    assert metrics["Incidents this month"] == ("1", "1 h 30 min down")
    assert metrics["API p95, last 24 h"] == ("≤ 0.25 s", "12,345 v1 requests")


def test_the_ledger_gives_home_its_operations_figures(make_settings):
    from ledger import incidents
    from ledger.db import connect
    from ledger.explorer import ops_figures
    s = make_settings()
    with connect(s, autocommit=True) as conn:
        incidents.open_incident(conn, "sync", "scheduled", "failing")
        got = ops_figures(conn, datetime.now(UTC) - timedelta(hours=1), "UTC")
    assert got.problems_open == 0 and got.incidents_month == 1 and got.incidents_open == 1
    assert got.requests_24h == 0 and got.p95_24h_ms == 0.0
