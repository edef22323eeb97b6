"""Triggers: never two syncs at once (the later one is a 'skipped' run), transient failures
retried with back-off, bad data not retried."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fmw.errors import DatabaseUnavailable, SyncAlreadyRunning, TransientSourceError
from ledger.sync import plan_sync
from scheduler.config import RetryPolicy
from scheduler.runner import SyncOutcome, is_transient, run_with_retry
from tests.scheduler.conftest import count, no_publish, runs, wait_for
from tests.scheduler.servers import Reply, csv_body, http_source, serve_feed

REPO = Path(__file__).resolve().parents[2]


def test_two_triggers_at_once_make_one_run_and_one_skipped(make_settings, schedulers) -> None:
    with serve_feed([Reply(200, csv_body(50))], open_gate=False) as feed:
        s = make_settings(http_source(feed.url))
        sched = schedulers(s)
        sched.start()
        first: list[SyncOutcome] = []
        t = threading.Thread(target=lambda: first.append(
            sched.trigger_now(plan_sync(s, trigger="schedule"))))
        t.start()
        assert feed.arrived.wait(30)  # the first sync holds the lock, reading the feed
        second = sched.trigger_now(plan_sync(s, trigger="api"))
        feed.gate.set()
        t.join(60)
    assert second.status == "skipped" and second.running_run_id == first[0].run_id
    assert first[0].status == "succeeded" and feed.requests == 1
    rows = runs(s)
    assert [(r["trigger"], r["status"]) for r in rows] == [("schedule", "succeeded"),
                                                            ("api", "skipped")]
    assert rows[1]["id"] == second.run_id
    assert rows[1]["error_summary"] == f"skipped: run {first[0].run_id} was already running"
    assert count(s, "features") == 50


def test_a_trigger_while_another_process_syncs_is_skipped(make_settings, schedulers) -> None:
    """The lock holds across processes: `fmw sync` in a subprocess, a scheduler trigger here."""
    with serve_feed([Reply(200, csv_body(20))], open_gate=False) as feed:
        s = make_settings(http_source(feed.url))
        env = {**os.environ, "FMW_DATABASE_URL": s.database_url or "", "FMW_SCHEMA": s.schema,
               "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "fmw", "--config", str(s.config_path),
                                 "--data-dir", str(s.data_dir), "sync", "--no-progress"],
                                cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            assert feed.arrived.wait(60)
            sched = schedulers(s)
            sched.start()
            outcome = sched.trigger_now(plan_sync(s, trigger="schedule"))
        finally:
            feed.gate.set()
            out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert outcome.status == "skipped"
    assert [(r["trigger"], r["status"]) for r in runs(s)] == [("cli", "succeeded"),
                                                              ("schedule", "skipped")]


def test_a_transient_source_failure_is_retried_with_back_off(make_settings) -> None:
    replies = [Reply(503, b"busy", "text/plain"), Reply(503, b"busy", "text/plain"),
               Reply(200, csv_body(10))]
    with serve_feed(replies) as feed:
        s = make_settings(http_source(feed.url))
        waits: list[float] = []
        outcome = run_with_retry(s, plan_sync(s, trigger="schedule"),
                                 RetryPolicy(retries=3, delay_s=0.01, max_delay_s=1),
                                 job=no_publish, sleep=lambda d: bool(waits.append(d)))
    assert outcome.status == "succeeded" and outcome.attempts == 3 and feed.requests == 3
    assert waits == [0.01, 0.02]
    rows = runs(s)
    assert [(r["status"], r["retried"]) for r in rows] == [("failed", True), ("failed", True),
                                                           ("succeeded", False)]
    assert "HTTP 503" in rows[0]["error_summary"]
    assert "retried in 0.01 s, attempt 2 of 4" in rows[0]["error_summary"]
    assert count(s, "features") == 10


def test_transient_failures_give_up_after_the_configured_retries(make_settings) -> None:
    with serve_feed([Reply(503, b"down", "text/plain")]) as feed:
        s = make_settings(http_source(feed.url))
        outcome = run_with_retry(s, plan_sync(s), RetryPolicy(retries=2, delay_s=0),
                                 job=no_publish)
    assert outcome.status == "failed" and outcome.attempts == 3 and feed.requests == 3
    assert [r["retried"] for r in runs(s)] == [True, True, False]


@pytest.mark.parametrize("reply", [
    Reply(200, b"Group,Feature\nvolte,F1\n"),  # mapped columns missing
    Reply(404, b"nope", "text/plain"),
], ids=["missing-columns", "http-404"])
def test_bad_data_is_not_retried(make_settings, reply: Reply) -> None:
    with serve_feed([reply]) as feed:
        s = make_settings(http_source(feed.url))
        outcome = run_with_retry(s, plan_sync(s), RetryPolicy(retries=3, delay_s=0),
                                 job=no_publish)
    assert outcome.status == "failed" and outcome.attempts == 1 and feed.requests == 1
    assert [(r["status"], r["retried"]) for r in runs(s)] == [("failed", False)]


def test_an_unreachable_database_is_retried(make_settings, tmp_path) -> None:
    s = make_settings()
    down = s.with_overrides(database_url="postgresql://fmw@127.0.0.1:9/fmw",
                            sources=make_settings(http_source("http://127.0.0.1:9/x")).sources)
    waits: list[float] = []
    outcome = run_with_retry(down, plan_sync(down), RetryPolicy(retries=2, delay_s=1),
                             job=no_publish, sleep=lambda d: bool(waits.append(d)))
    assert outcome.status == "failed" and outcome.attempts == 3 and outcome.run_id is None
    assert isinstance(outcome.exception, DatabaseUnavailable) and waits == [1, 2]


def test_transient_is_read_through_the_cause_chain() -> None:
    from fmw.errors import SyncFailed
    try:
        try:
            raise TransientSourceError("feed", "HTTP 503")
        except TransientSourceError as inner:
            raise SyncFailed(7, "HTTP 503") from inner
    except SyncFailed as outer:
        assert is_transient(outer)
    assert not is_transient(SyncFailed(7, "bad rows"))
    assert not is_transient(SyncAlreadyRunning(3))


def test_retry_delays_double_up_to_the_cap() -> None:
    p = RetryPolicy(retries=5, delay_s=30, max_delay_s=100)
    assert [p.delay(n) for n in range(1, 6)] == [30, 60, 100, 100, 100]


def test_the_dev_api_job_goes_through_the_scheduler(make_settings, schedulers) -> None:
    with serve_feed([Reply(200, csv_body(5))]) as feed:
        s = make_settings(http_source(feed.url))
        sched = schedulers(s)
        sched.start()
        result = sched.api_job()(s, plan_sync(s, trigger="api"))
    assert result.sync.status == "succeeded"
    assert sched.status()["last_outcome"]["run_id"] == result.sync.run_id
    wait_for(lambda: sched.active_syncs == 0)
