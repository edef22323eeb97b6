"""Page views: counted in memory, written to the ledger when it is reachable, WAU on Home."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fmw.settings import Settings
from ledger.explorer import ViewCount, open_sla_violations, record_page_views, usage_summary
from ui import context
from ui.usage import LedgerIO, UsageRecorder

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"


def test_views_are_added_up_per_day_client_and_page(db):
    d = date(2026, 11, 20)
    record_page_views(db, [ViewCount(d, "10.0.0.1", "home", 2),
                           ViewCount(d, "10.0.0.2", "overview", 1)])
    record_page_views(db, [ViewCount(d, "10.0.0.1", "home", 3)])
    rows = db.execute("SELECT client, page, views FROM ui_page_views ORDER BY 1").fetchall()
    assert rows == [("10.0.0.1", "home", 5), ("10.0.0.2", "overview", 1)]


def test_weekly_active_users_are_distinct_clients_over_seven_days(db):
    today = date(2026, 11, 20)
    counts = [ViewCount(today - timedelta(days=k), f"10.0.0.{c}", "home", 1)
              for k, c in ((0, 1), (1, 1), (6, 2), (7, 3), (10, 4), (13, 1), (20, 5))]
    record_page_views(db, counts)
    s = usage_summary(db, today)
    assert s.weekly_active == 2  # .1 and .2 in the 7 days ending today
    assert s.previous_weekly_active == 3  # .3, .4, .1 in the 7 days before
    assert s.clients_in_period == 5
    assert len(s.per_day) == 28 and s.per_day[-1].day == today
    assert (s.per_day[-1].views, s.per_day[-1].clients) == (1, 1)


def test_no_open_sla_violations_on_a_fresh_ledger(db):
    assert open_sla_violations(db) == []


class FlakyIO:
    def __init__(self) -> None:
        self.up = False
        self.written: list[ViewCount] = []

    def write(self, counts: list[ViewCount]) -> None:
        if not self.up:
            raise ConnectionError("connection refused")
        self.written.extend(counts)

    def read(self, today: date):  # noqa: ANN201
        if not self.up:
            raise ConnectionError("connection refused")
        return usage_summary_stub(today), []


def usage_summary_stub(today: date):  # noqa: ANN201
    from ledger.explorer import UsageSummary
    return UsageSummary(today, (), 7, 5, 9)


def test_views_are_kept_in_memory_while_the_ledger_is_down():
    io = FlakyIO()
    now = datetime(2026, 11, 20, 10, tzinfo=UTC)
    rec = UsageRecorder(io, "Asia/Seoul", flush_s=0, clock=lambda: now)
    for client in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        rec.record(client, "home")
    assert rec.flush() is False and rec.refresh() is False
    assert rec.pending == 3 and "connection refused" in (rec.view.error or "")
    local = rec.local_summary()
    assert local.weekly_active == 2 and local.per_day[-1].views == 3
    io.up = True
    assert rec.flush() is True and rec.refresh() is True
    assert rec.pending == 0 and rec.view.usage is not None and rec.view.usage.weekly_active == 7
    assert sorted((c.client, c.views, c.day) for c in io.written) == [
        ("10.0.0.1", 2, date(2026, 11, 20)), ("10.0.0.2", 1, date(2026, 11, 20))]


def test_the_recorder_writes_to_the_real_ledger(make_settings):
    s = make_settings()
    rec = UsageRecorder(LedgerIO(s), s.timezone, flush_s=0)
    rec.record("10.9.9.9", "overview")
    assert rec.flush() and rec.refresh()
    assert rec.view.usage is not None and rec.view.usage.weekly_active == 1
    assert rec.view.sla == ()


def test_an_unreachable_ledger_only_leaves_the_views_buffered(tmp_path):
    s = Settings(data_dir=tmp_path, database_url="postgresql://fmw@127.0.0.1:9/nope")
    rec = UsageRecorder(LedgerIO(s), "UTC", flush_s=0)
    rec.record("10.0.0.1", "home")
    assert rec.flush() is False and rec.pending == 1
    embedded = UsageRecorder(LedgerIO(Settings(data_dir=tmp_path)), "UTC", flush_s=0)
    embedded.record("10.0.0.1", "home")
    assert embedded.flush() is False  # the explorer never starts an embedded server
    assert not (tmp_path / "pg").exists()


@pytest.fixture
def empty_explorer(tmp_path):
    s = Settings(data_dir=tmp_path / "d", snapshots_dir=tmp_path / "snaps")
    context.use(s, dataclasses.replace(context.ui_config(s), usage_flush_s=0))
    yield s
    context._injected = None


def test_opening_a_page_counts_one_view_per_page_not_per_rerun(empty_explorer):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    settings, ui = context.config()
    rec = context.recorder(settings, ui)
    counted = sum(n for (_, _, page), n in rec._buffer.items() if page == "home")
    at.run()
    at.run()
    assert sum(n for (_, _, page), n in rec._buffer.items() if page == "home") == counted >= 1


@pytest.mark.parametrize(("ip", "headers", "client"), [
    ("10.1.2.3", {}, "10.1.2.3"),
    ("10.1.2.3", {"X-Forwarded-For": "6.6.6.6"}, "10.1.2.3"),  # not from our proxy: ignored
    ("127.0.0.1", {"X-Forwarded-For": "6.6.6.6, 10.1.2.3"}, "10.1.2.3"),
    ("127.0.0.1", {"x-forwarded-for": "junk"}, "127.0.0.1"),
    # Streamlit reports a loopback peer as None (issue 11/13: these were "unknown")
    (None, {}, "127.0.0.1"),
    (None, {"X-Forwarded-For": "10.9.8.7"}, "10.9.8.7"),
    ("", {"X-Forwarded-For": "6.6.6.6, 10.9.8.7"}, "10.9.8.7"),
])
def test_the_client_behind_nginx_is_the_address_nginx_saw(ip, headers, client):
    assert context.pick_client(ip, headers) == client
