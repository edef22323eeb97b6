"""SLA governance: definitions as data, one alert per violation to a real local webhook,
closed (with a "back to normal" message) when fixed."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from fmw.errors import FmwError
from ledger import sla
from ledger.db import connect
from ledger.sla import RunFacts, SlaDefinition
from ledger.sync import plan_sync, run_sync
from scheduler.sla import check_slas, evaluate
from tests.ledger.helpers import csv_source, write_csv
from tests.scheduler.conftest import FAST, wait_for
from tests.scheduler.servers import serve_webhook

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def definition(kind: str, **kw: Any) -> SlaDefinition:
    base: dict[str, Any] = {"name": kind, "kind": kind, "enabled": True, "threshold": None,
                            "deadline": None, "window_days": None, "min_samples": 20,
                            "description": "", "updated_at": NOW}
    return SlaDefinition(**{**base, **kw})


def facts(last: datetime | None = None, today_first: datetime | None = None,
          windows: dict[int, tuple[int, int]] | None = None) -> RunFacts:
    return RunFacts(now=NOW, today=date(2026, 11, 24), last_success_at=last,
                    first_success_today_at=today_first, window_days=windows or {})


def metrics(p95_ms: float, window: int = 100, route: str = "/api/v1/features") -> dict[str, Any]:
    return {"routes": [{"method": "GET", "route": route, "p95_ms": p95_ms, "window": window},
                       {"method": "GET", "route": "/api/dev/runs", "p95_ms": 9000.0,
                        "window": 500}]}


FRESH = definition("freshness", threshold=26)
DEADLINE = definition("daily_deadline", deadline=datetime(2000, 1, 1, 7, 0).time())
RATE = definition("success_rate", threshold=0.98, window_days=30)
P95 = definition("api_p95", threshold=3.0)


@pytest.mark.parametrize(("d", "f", "m", "ok", "detail"), [
    (FRESH, facts(NOW - timedelta(hours=2)), None, True, "2.0 h ago (within 26 h)"),
    (FRESH, facts(NOW - timedelta(hours=30)), None, False, "30.0 h ago (over 26 h)"),
    (FRESH, facts(None), None, False, "no successful sync yet"),
    (DEADLINE, facts(), None, False, "no successful sync today (2026-11-24) by 07:00 UTC"),
    (DEADLINE, facts(today_first=NOW.replace(hour=6)), None, True, "finished at 06:00 UTC"),
    # regression: a run finishing after the deadline was reported "ok"
    (DEADLINE, facts(today_first=NOW.replace(hour=7, minute=45)), None, False,
     "after the 07:00 deadline"),
    (DEADLINE, facts(today_first=NOW.replace(hour=7, minute=0)), None, True,
     "by the 07:00 deadline"),
    (DEADLINE, facts(today_first=NOW.replace(hour=7, minute=0, second=1)), None, False,
     "after the 07:00 deadline"),
    (FRESH, facts(NOW - timedelta(hours=25, minutes=59)), None, True, "within 26 h"),
    (FRESH, facts(NOW - timedelta(hours=26, minutes=1)), None, False, "over 26 h"),
    (definition("daily_deadline", deadline=datetime(2000, 1, 1, 9, 0).time()), facts(), None,
     True, "before today's 09:00 UTC deadline"),
    (RATE, facts(windows={30: (49, 50)}), None, True, "applied on 49 of 50 days"),
    (RATE, facts(windows={30: (48, 50)}), None, False, "96.0%; target 98%"),
    (RATE, facts(windows={30: (98, 100)}), None, True, "98.0%; target 98%"),
    (RATE, facts(windows={30: (97, 100)}), None, False, "97.0%; target 98%"),
    (P95, facts(), metrics(2999), True, "p95 2.999 s"),
    (P95, facts(), metrics(3000), False, "not under 3 s"),
    (RATE, facts(windows={30: (0, 0)}), None, None, "no finished syncs"),
    (P95, facts(), metrics(1200), True, "p95 1.200 s on GET /api/v1/features"),
    (P95, facts(), metrics(3500), False, "not under 3 s"),
    (P95, facts(), metrics(3500, window=5), None, "no v1 route has 20 recent requests"),
    (P95, facts(), None, None, "not evaluated"),
])
def test_evaluate(d: SlaDefinition, f: RunFacts, m: dict[str, Any] | None, ok: bool | None,
                  detail: str) -> None:
    found = evaluate(d, f, m, "UTC")
    assert found.ok is ok and detail in found.detail


def test_the_deadline_is_local_time() -> None:
    d = definition("daily_deadline", deadline=datetime(2000, 1, 1, 7, 0).time())
    # 08:00 UTC is 17:00 in Seoul: past 07:00 there, and no sync yet today
    assert evaluate(d, facts(), None, "Asia/Seoul").ok is False
    # ... but 08:00 UTC is 03:00 in New York: before the deadline
    assert evaluate(d, facts(), None, "America/New_York").ok is True


def _only(settings, name: str) -> None:
    with connect(settings, autocommit=True) as conn:
        for d in sla.list_definitions(conn):
            sla.update_definition(conn, d.name, enabled=d.name == name)


def _source(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", [("volte", "F1", "450", "05", "on", "1", "kim",
                                          "2026-11-01")])
    return make_settings(csv_source("a", src))


def test_a_violation_alerts_once_and_closes_when_fixed(make_settings, tmp_path) -> None:
    s = _source(make_settings, tmp_path)
    _only(s, "freshness")
    with serve_webhook() as hook:
        config = FAST.with_(webhook_url=hook.url)
        first = check_slas(s, config)
        for _ in range(3):  # later checks while it is still violated: no new alert
            again = check_slas(s, config)
            assert again.opened == () and again.alerts_sent == 0
        assert [v.sla_name for v in first.opened] == ["freshness"]
        assert len(hook.bodies) == 1
        body = hook.bodies[0]
        assert body["event"] == "sla_violation_opened" and body["sla"] == "freshness"
        assert body["text"].startswith("FMW SLA violated: freshness (freshness) - "
                                       "no successful sync yet")
        with connect(s, autocommit=True) as conn:
            [open_v] = sla.open_violations(conn)
        assert open_v.alerted_at is not None and open_v.alert_attempts == 1

        run_sync(s, plan_sync(s))  # the fix: a successful sync
        fixed = check_slas(s, config)
        assert [v.id for v in fixed.closed] == [open_v.id]
        check_slas(s, config)
        assert [b["event"] for b in hook.bodies] == ["sla_violation_opened",
                                                     "sla_violation_closed"]
        assert hook.bodies[1]["text"].startswith("FMW SLA back to normal: freshness")
    with connect(s, autocommit=True) as conn:
        assert sla.open_violations(conn) == []
        [closed] = sla.recent_violations(conn)
        report = sla.sla_report(conn)
    assert closed.closed_at is not None and "last successful sync" in (closed.close_detail or "")
    assert report["open"] == [] and report["recent"][0]["open"] is False
    assert {d["name"] for d in report["definitions"]} >= {"freshness", "api_p95"}


def test_an_alert_the_webhook_refused_is_delivered_at_the_next_check(make_settings,
                                                                     tmp_path) -> None:
    s = _source(make_settings, tmp_path)
    _only(s, "freshness")
    with serve_webhook(fail_first=1) as hook:
        config = FAST.with_(webhook_url=hook.url)
        first = check_slas(s, config)
        assert first.alerts_sent == 0 and "HTTP 500" in first.alert_errors[0]
        assert "fmw-secret-token" not in first.alert_errors[0]  # the URL's secret stays out
        second = check_slas(s, config)
        third = check_slas(s, config)
    assert second.alerts_sent == 1 and third.alerts_sent == 0
    assert hook.attempts == 2 and len(hook.events("sla_violation_opened")) == 1


def test_the_p95_sla_reads_the_api_metrics(make_settings, tmp_path) -> None:
    s = _source(make_settings, tmp_path)
    _only(s, "api_p95")
    with serve_webhook() as hook:
        config = FAST.with_(webhook_url=hook.url)
        slow = check_slas(s, config, metrics=lambda: metrics(4200))
        fast = check_slas(s, config, metrics=lambda: metrics(800))
    assert [v.sla_name for v in slow.opened] == ["api_p95"] and slow.opened[0].observed == 4.2
    assert [v.sla_name for v in fast.closed] == ["api_p95"]
    assert [b["event"] for b in hook.bodies] == ["sla_violation_opened", "sla_violation_closed"]


def test_thresholds_are_data(make_settings, tmp_path) -> None:
    s = _source(make_settings, tmp_path)
    run_sync(s, plan_sync(s))
    _only(s, "freshness")
    assert check_slas(s, FAST).opened == ()
    with connect(s, autocommit=True) as conn:
        sla.update_definition(conn, "freshness", threshold=0.0001)  # 0.36 s
    time.sleep(0.5)
    assert [v.sla_name for v in check_slas(s, FAST).opened] == ["freshness"]
    with connect(s, autocommit=True) as conn:
        sla.update_definition(conn, "freshness", enabled=False)
    check_slas(s, FAST)  # a disabled SLA's open violation is closed (it can't be fixed)
    with connect(s, autocommit=True) as conn:
        assert sla.open_violations(conn) == []
        with pytest.raises(FmwError, match="value refused"):
            sla.update_definition(conn, "success_rate", threshold=1.5)
        with pytest.raises(FmwError, match="no SLA named"):
            sla.update_definition(conn, "nope", threshold=1)


def test_the_scheduler_checks_slas_without_repeating_alerts(make_settings, schedulers,
                                                            tmp_path) -> None:
    s = _source(make_settings, tmp_path)
    _only(s, "freshness")
    with serve_webhook() as hook:
        sched = schedulers(s, FAST.with_(webhook_url=hook.url, sla_interval_s=0.2))
        sched.start()
        wait_for(lambda: hook.bodies, timeout=20)
        time.sleep(1.5)  # several more checks
        assert len(hook.bodies) == 1
        sched.trigger_now(plan_sync(s, trigger="api"))  # the fix; a check follows each sync
        wait_for(lambda: len(hook.bodies) == 2, timeout=20)
    assert [b["event"] for b in hook.bodies] == ["sla_violation_opened", "sla_violation_closed"]


def _run(conn, days_ago: int, status: str, bad: int = 0, minute: int = 0) -> None:
    """A finished run at noon (UTC) `days_ago` days ago, plus `minute` minutes."""
    conn.execute("INSERT INTO runs (trigger, status, started_at, finished_at, day, sources, "
                 "rows_bad) SELECT 'schedule', %s, t, t + interval '1 minute', t::date, '{a}', "
                 "%s FROM (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                 " - %s * interval '1 day' + interval '12 hours' + %s * interval '1 minute'"
                 " AS t) x", (status, bad, days_ago, minute))


def test_success_rate_is_a_share_of_days_and_partial_days_are_shown(db) -> None:
    """Issue 13: five partial runs read "5 of 5 syncs succeeded"; the same 8 bad rows a day
    were invisible. A day counts once, whatever number of runs it had."""
    for day in range(1, 6):
        _run(db, day, "partial", bad=8)
    _run(db, 6, "failed")
    _run(db, 6, "failed", minute=30)  # the same bad day: counted once
    _run(db, 7, "failed")
    _run(db, 7, "succeeded", minute=30)  # failed, then a good run the same day: a good day
    f = sla.run_facts(db, "UTC", {30})
    assert f.window_days[30] == (6, 7) and f.window_partial[30] == (5, 40)
    found = evaluate(RATE, f, None, "UTC")
    assert found.ok is False
    assert "a sync applied on 6 of 7 days" in found.detail
    assert "5 of them partial (40 bad rows)" in found.detail
