"""Downtime: exactly one catch-up run however many fires were missed; none when nothing was
missed; one scheduler per schema (the other stands by and takes over)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from ledger import scheduling
from ledger.db import connect
from scheduler.config import OpsConfig
from scheduler.core import CATCH_UP_JOB, CRON_JOB, INTERVAL_JOB, next_due, overdue_jobs
from tests.ledger.helpers import csv_source, write_csv
from tests.scheduler.conftest import FAST, runs, wait_for

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("config", "job_id", "last", "due"), [
    (FAST.with_(cron="0 6 * * *"), CRON_JOB, NOW - timedelta(days=3), True),
    (FAST.with_(cron="0 6 * * *"), CRON_JOB, NOW.replace(hour=6, minute=0), False),
    (FAST.with_(cron="0 6 * * *"), CRON_JOB, NOW.replace(hour=5, minute=59), True),
    # 06:00 in Seoul is 21:00 UTC the day before
    (FAST.with_(cron="0 6 * * *", timezone="Asia/Seoul"), CRON_JOB,
     datetime(2026, 11, 23, 21, 0, tzinfo=UTC), False),
    (FAST.with_(cron="0 6 * * *", timezone="Asia/Seoul"), CRON_JOB,
     datetime(2026, 11, 23, 20, 59, tzinfo=UTC), True),
    (FAST.with_(interval=timedelta(hours=1)), INTERVAL_JOB, NOW - timedelta(hours=5), True),
    (FAST.with_(interval=timedelta(hours=1)), INTERVAL_JOB, NOW - timedelta(minutes=30), False),
])
def test_overdue_compares_the_last_fire_with_the_schedule(config: OpsConfig, job_id: str,
                                                          last: datetime, due: bool) -> None:
    assert overdue_jobs(config, {job_id: last}, NOW) == ([job_id] if due else [])


def test_next_due_is_none_for_an_unconfigured_job() -> None:
    assert next_due(FAST, CRON_JOB, NOW) is None and next_due(FAST, INTERVAL_JOB, NOW) is None


def _settings(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", [("volte", "F1", "450", "05", "on", "1", "kim",
                                          "2026-11-01")])
    return make_settings(csv_source("a", src))


@pytest.mark.parametrize(("config", "job_id", "missed"), [
    (FAST.with_(cron="0 6 * * *"), CRON_JOB, timedelta(days=3)),
    (FAST.with_(interval=timedelta(minutes=60)), INTERVAL_JOB, timedelta(hours=5)),
], ids=["cron", "interval"])
def test_downtime_leads_to_exactly_one_catch_up_run(make_settings, schedulers, tmp_path,
                                                    config: OpsConfig, job_id: str,
                                                    missed: timedelta) -> None:
    s = _settings(make_settings, tmp_path)
    with connect(s, autocommit=True) as conn:
        scheduling.set_fire_time(conn, job_id, datetime.now(UTC) - missed)
    sched = schedulers(s, config)
    sched.start()
    wait_for(lambda: [r for r in runs(s) if r["status"] != "running"])
    time.sleep(1.5)  # time for a second (wrong) run to show up
    assert [(r["trigger"], r["status"]) for r in runs(s)] == [("catchup", "succeeded")]
    with connect(s, autocommit=True) as conn:
        state = scheduling.get_fire_state(conn, job_id)
    assert state is not None and state.last_outcome == "succeeded"
    assert datetime.now(UTC) - state.last_fire_at < timedelta(minutes=1)
    sched.shutdown()

    again = schedulers(s, config)  # a restart right after: nothing is due any more
    again.start()
    wait_for(lambda: again.leader)
    time.sleep(1.0)
    assert len(runs(s)) == 1
    assert CATCH_UP_JOB not in {j["id"] for j in again.status()["jobs"]}


def test_first_start_sets_a_baseline_and_runs_nothing(make_settings, schedulers, tmp_path) -> None:
    s = _settings(make_settings, tmp_path)
    sched = schedulers(s, FAST.with_(cron="0 6 * * *"))
    sched.start()
    wait_for(lambda: sched.leader)
    time.sleep(1.0)
    assert runs(s) == []
    with connect(s, autocommit=True) as conn:
        state = scheduling.get_fire_state(conn, CRON_JOB)
    assert state is not None and state.last_outcome == "baseline"
    jobs = {j["id"]: j["next_run_time"] for j in sched.status()["jobs"]}
    assert jobs[CRON_JOB].endswith("06:00:00+00:00")


def test_catch_up_can_be_turned_off(make_settings, schedulers, tmp_path) -> None:
    s = _settings(make_settings, tmp_path)
    with connect(s, autocommit=True) as conn:
        scheduling.set_fire_time(conn, CRON_JOB, datetime.now(UTC) - timedelta(days=2))
    sched = schedulers(s, FAST.with_(cron="0 6 * * *", catch_up=False))
    sched.start()
    wait_for(lambda: sched.leader)
    time.sleep(1.0)
    assert runs(s) == []


def test_one_scheduler_per_schema_the_other_stands_by(make_settings, schedulers,
                                                      tmp_path) -> None:
    s = _settings(make_settings, tmp_path)
    config = FAST.with_(cron="0 6 * * *")
    a, b = schedulers(s, config), schedulers(s, config)
    a.start()
    wait_for(lambda: a.leader)
    b.start()
    time.sleep(1.0)
    assert not b.leader and b.status()["status"] == "standby"
    assert CRON_JOB not in {j["id"] for j in b.status()["jobs"]}
    with connect(s, autocommit=True) as conn:
        assert scheduling.scheduler_lock_holder(conn, s.schema) is not None
    a.shutdown()
    # takes over at its next leader check, then installs the schedule
    wait_for(lambda: b.leader and CRON_JOB in {j["id"] for j in b.status()["jobs"]}, timeout=10)


def test_the_scheduler_lock_is_distinct_from_the_other_locks() -> None:
    """Regression: the scheduler lock once shared its class with the snapshot publish lock, so
    a running service host blocked every publish forever."""
    from ledger.runs import LOCK_CLASS
    from ledger.snapshots import PUBLISH_LOCK_CLASS
    classes = [LOCK_CLASS, PUBLISH_LOCK_CLASS, scheduling.SCHEDULER_LOCK_CLASS]
    assert len(set(classes)) == len(classes)
