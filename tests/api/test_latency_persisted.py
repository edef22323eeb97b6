"""The v1 p95 survives restarts and is seen across processes (issue 13: metrics lived in one
process's memory, so `fmw sla check` said "not evaluated: no API runs in this process")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.metrics import LatencyFlusher, Metrics
from ledger import latency
from ledger.db import connect
from ledger.latency import BUCKETS_MS, p95_of
from scheduler.config import OpsConfig
from scheduler.sla import check_slas
from tests.api.conftest import serve, stop


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_p95_of_a_histogram_is_the_bound_at_or_above_it():
    buckets = [0] * (len(BUCKETS_MS) + 1)
    buckets[0] = 90  # <= 5 ms
    buckets[BUCKETS_MS.index(2000)] = 10  # <= 2 s
    assert p95_of(buckets) == 2000
    buckets[-1] = 100  # over 30 s
    assert p95_of(buckets) == float("inf")
    assert p95_of([0] * len(buckets)) == 0.0


def test_minutes_are_drained_when_finished_and_kept_when_the_ledger_is_away():
    clock = Clock(1_000_020.0)
    m = Metrics(clock=clock)
    for ms in (3, 40, 2500):
        m.observe("GET", "/api/v1/features", 200, ms / 1000)
    m.observe("GET", "/api/v1/features", 503, 0.001)
    assert m.drain() == []  # the minute is not over
    clock.t += 60
    rows = m.drain()
    assert len(rows) == 1 and rows[0].requests == 4 and rows[0].errors == 1
    assert rows[0].buckets[BUCKETS_MS.index(3000)] == 1

    def away(_rows):
        raise OSError("ledger down")
    m.restore(rows)
    assert LatencyFlusher(m, away).flush() == 0  # failed: kept for the next try
    assert m.drain(everything=True)[0].requests == 4


def test_latency_written_by_one_server_is_judged_by_the_sla_after_it_stopped(env):
    """Two API processes' minutes add up in the ledger; after both stopped, `fmw sla check`
    (no API in its process) judges the v1 p95 on them."""
    with connect(env.settings, autocommit=True) as conn:
        conn.execute("TRUNCATE api_latency")
    for slow in (False, True):
        srv = serve(env.settings)
        try:
            m = srv.services.metrics
            for _ in range(30):
                m.observe("GET", "/api/v1/features", 200, 3.5 if slow else 0.02)
        finally:
            stop(srv)  # close() writes what is left
    with connect(env.settings, autocommit=True) as conn:
        [route] = latency.window(conn, timedelta(hours=1), "/api/v1")
        hosts = conn.execute("SELECT count(DISTINCT (host, pid, minute)) FROM api_latency"
                             ).fetchone()[0]
    assert route.requests == 60 and route.p95_ms == 5000 and hosts >= 1
    result = check_slas(env.settings, OpsConfig.from_settings(env.settings))
    [p95] = [f for f in result.findings if f.kind == "api_p95"]  # enabled by default
    assert p95.ok is False and "every API process" in p95.detail, p95.detail
    assert "not evaluated" not in p95.detail


def test_a_minute_written_twice_adds_up(env):
    row = latency.MinuteRow(datetime(2026, 12, 1, 10, 0, tzinfo=UTC), "GET", "/api/v1/x", 2, 0,
                            10.0, tuple([2] + [0] * len(BUCKETS_MS)))
    with connect(env.settings, autocommit=True) as conn:
        latency.save(conn, "h", 1, [row])
        latency.save(conn, "h", 1, [row])
        got = conn.execute("SELECT requests, buckets[1] FROM api_latency WHERE route = "
                           "'/api/v1/x'").fetchone()
    assert got == (4, 4)
