"""Incidents (issue 13, KPI "Sev-2 at most 1 per month"): a sync failing past its retries, a
stale snapshot and a ledger outage open an incident with start, end and duration; `fmw status`
shows this month's count and downtime."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ledger import incidents
from ledger.db import connect
from ops.status import assess
from scheduler.core import _sync_incident
from scheduler.runner import SyncOutcome
from scheduler.sla import check_slas
from tests.ops.test_status import LIMITS, healthy
from tests.scheduler.conftest import FAST


def _rows(conn):
    return conn.execute("SELECT kind, key, closed_at IS NOT NULL, detail FROM incidents "
                        "ORDER BY id").fetchall()


def test_a_sync_failing_past_its_retries_opens_one_incident_until_a_sync_applies(db):
    failed = SyncOutcome("schedule", "failed", 7, 4, error="source 'a': file not found")
    _sync_incident(db, failed)
    _sync_incident(db, failed)  # the next failing day: still the same incident
    assert [r[:3] for r in _rows(db)] == [("sync", "scheduled", False)]
    assert "after 4 attempt(s): source 'a': file not found" in _rows(db)[0][3]
    _sync_incident(db, SyncOutcome("schedule", "partial", 8, 1))
    assert [r[:3] for r in _rows(db)] == [("sync", "scheduled", True)]


def test_a_stale_snapshot_is_an_incident_while_the_freshness_sla_is_violated(make_settings):
    s = make_settings()
    with connect(s, autocommit=True) as conn:
        for d in ("daily_deadline", "success_rate", "api_p95"):
            conn.execute("UPDATE sla_definitions SET enabled = false WHERE name = %s", (d,))
        check_slas(s, FAST)  # no successful sync at all: stale
        assert [r[:3] for r in _rows(conn)] == [("stale", "freshness", False)]
        conn.execute("INSERT INTO runs (trigger, status, started_at, finished_at, day, "
                     "sources) VALUES ('test', 'succeeded', now(), now(), current_date, '{a}')")
        check_slas(s, FAST)
        assert [r[:3] for r in _rows(conn)] == [("stale", "freshness", True)]


def test_this_months_count_and_downtime(db):
    now = datetime.now(UTC)
    incidents.record_incident(db, "ledger", "pg", now - timedelta(minutes=90),
                              now - timedelta(minutes=30), "down", "back")
    incidents.open_incident(db, "sync", "scheduled", "failing")
    got = incidents.this_month(db, "UTC")
    assert got.count == 2 and len(got.open) == 1
    if (now - timedelta(minutes=90)).month == now.month:  # else the month clips it
        assert 3600 <= got.downtime_s < 3600 + 120  # 60 min closed + the open one's seconds


def test_status_shows_the_months_incidents():
    from ledger.incidents import MonthIncidents
    ok = assess(replace(healthy(), incidents=MonthIncidents(1, 5400.0, ())), LIMITS)
    [line] = [ln for ln in ok if ln.section == "incidents"]
    assert line.level == "ok" and "1 this month (target at most 1), 1 h 30 min in all" in line.text
    bad = assess(replace(healthy(), incidents=MonthIncidents(
        2, 60.0, ({"kind": "sync", "opened_at": healthy().now - timedelta(hours=2),
                   "detail": "scheduled sync failed"},))), LIMITS)
    lines = [ln for ln in bad if ln.section == "incidents"]
    assert [ln.level for ln in lines] == ["fail", "fail"]
    assert "open since 2.0 h ago: sync - scheduled sync failed" in lines[1].text
