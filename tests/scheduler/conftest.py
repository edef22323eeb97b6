"""Shared pieces of the scheduler tests: a fast config, a scheduler that always stops, polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fmw.settings import Settings
from ledger.db import connect
from ledger.sync import SyncPlan
from scheduler.config import OpsConfig, RetryPolicy
from scheduler.core import SyncScheduler
from scheduler.jobs import JobResult, sync_and_publish

#: No schedule, quick retries, SLA checks out of the way unless a test asks for them.
FAST = OpsConfig(cron=None, interval=None, retry=RetryPolicy(retries=3, delay_s=0.05,
                                                             max_delay_s=0.2),
                 sla_interval_s=3600, leader_retry_s=0.5, stop_grace_s=5)


def no_publish(settings: Settings, plan: SyncPlan) -> JobResult:
    return sync_and_publish(settings, plan, publish=False)


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def runs(settings: Settings) -> list[dict[str, Any]]:
    with connect(settings, autocommit=True) as conn:
        cur = conn.execute("SELECT id, trigger, status, error_summary, retried FROM runs "
                           "ORDER BY id")
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def count(settings: Settings, table: str) -> int:
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def schedulers() -> Iterator[Callable[..., SyncScheduler]]:
    """Build schedulers that are shut down at the end of the test, whatever happens."""
    made: list[SyncScheduler] = []

    def make(settings: Settings, config: OpsConfig = FAST, **kw: Any) -> SyncScheduler:
        kw.setdefault("job", no_publish)
        s = SyncScheduler(settings, config, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.shutdown(grace_s=10)
