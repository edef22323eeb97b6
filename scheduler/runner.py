"""One triggered sync: retried with back-off when the failure is transient, recorded as
'skipped' when another sync holds the lock, aborted cleanly when the service stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from fmw.errors import SyncAlreadyRunning, SyncFailed, Transient
from fmw.settings import Settings
from ledger import scheduling
from ledger.db import connect
from ledger.sync import SyncPlan
from scheduler.config import RetryPolicy
from scheduler.jobs import JobResult, sync_and_publish

log = logging.getLogger(__name__)

OutcomeStatus = Literal["succeeded", "partial", "failed", "skipped", "aborted"]
Job = Callable[[Settings, SyncPlan], JobResult]

ABORTED = ("aborted: the FMW service was stopped while this sync ran; nothing was applied "
           "(the next start catches up)")


@dataclass(frozen=True)
class SyncOutcome:
    """What became of one trigger.

    run_id: the last run row written (the skipped row for 'skipped'; None if no run row was
    written, e.g. the database was unreachable). running_run_id: the run that caused a skip.
    """

    trigger: str
    status: OutcomeStatus
    run_id: int | None
    attempts: int
    result: JobResult | None = None
    error: str | None = None
    running_run_id: int | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "status": self.status, "run_id": self.run_id,
                "attempts": self.attempts, "error": self.error,
                "running_run_id": self.running_run_id}


def is_transient(exc: BaseException) -> bool:
    """True when `exc` or anything it was raised from is marked `Transient`.

    `run_sync` wraps a source's `TransientSourceError` in `SyncFailed(...) from exc`, so the
    cause chain is followed. A lost database connection in the middle of a run (psycopg's
    OperationalError, but not a cancelled statement) counts as transient too.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, Transient):
            return True
        if isinstance(cur, psycopg.OperationalError) and not isinstance(
                cur, psycopg.errors.QueryCanceled):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def run_with_retry(settings: Settings, plan: SyncPlan, policy: RetryPolicy, *,
                   stop: threading.Event | None = None, job: Job = sync_and_publish,
                   sleep: Callable[[float], bool] | None = None) -> SyncOutcome:
    """Run `plan` through `job`, retrying transient failures; never raises for a sync outcome.

    Args:
        stop: once set, no further attempt starts and a failing attempt counts as aborted.
        sleep: waits the back-off; returns True to abandon (default: `stop.wait`).
    """
    stop = stop or threading.Event()
    wait = sleep or stop.wait
    attempt = 0
    while True:
        attempt += 1
        try:
            result = job(settings, plan)
        except SyncAlreadyRunning as exc:
            rid = _record_skipped(settings, plan, exc.run_id)
            log.info("%s trigger skipped: %s", plan.trigger, exc)
            return SyncOutcome(plan.trigger, "skipped", rid, attempt, error=str(exc),
                               running_run_id=exc.run_id, exception=exc)
        except Exception as exc:
            run_id = exc.run_id if isinstance(exc, SyncFailed) else None
            if stop.is_set():
                _note(settings, scheduling.note_aborted, run_id, ABORTED)
                log.warning("%s sync aborted because the service is stopping (run %s)",
                            plan.trigger, run_id)
                return SyncOutcome(plan.trigger, "aborted", run_id, attempt, error=ABORTED,
                                   exception=exc)
            if is_transient(exc) and attempt <= policy.retries:
                delay = policy.delay(attempt)
                note = (f"(transient; retried in {delay:g} s, attempt {attempt + 1} of "
                        f"{policy.retries + 1})")
                _note(settings, scheduling.mark_retried, run_id, note)
                log.warning("%s sync attempt %d failed, retrying in %g s: %s", plan.trigger,
                            attempt, delay, exc)
                if wait(delay):
                    return SyncOutcome(plan.trigger, "aborted", run_id, attempt,
                                       error=f"{exc} (retry abandoned: the service is stopping)",
                                       exception=exc)
                continue
            log.error("%s sync failed after %d attempt(s): %s", plan.trigger, attempt, exc)
            return SyncOutcome(plan.trigger, "failed", run_id, attempt, error=str(exc),
                               exception=exc)
        status: OutcomeStatus = "partial" if result.sync.status == "partial" else "succeeded"
        if result.sync.status == "failed":  # not raised by run_sync today; kept exhaustive
            status = "failed"
        log.info("%s sync: run %s %s", plan.trigger, result.sync.run_id, result.sync.status)
        return SyncOutcome(plan.trigger, status, result.sync.run_id, attempt, result=result,
                           error=result.snapshot_error)


def _record_skipped(settings: Settings, plan: SyncPlan, running: int | None) -> int | None:
    try:
        with connect(settings, autocommit=True, application_name="fmw-scheduler") as conn:
            return scheduling.record_skipped(conn, plan.trigger, [s.name for s in plan.sources],
                                             settings.timezone, running)
    except Exception as exc:  # the database went away between the lock check and now
        log.warning("could not record the skipped %s trigger: %s", plan.trigger, exc)
        return None


def _note(settings: Settings, fn: Callable[..., None], run_id: int | None, text: str) -> None:
    if run_id is None:
        return
    try:
        with connect(settings, autocommit=True, application_name="fmw-scheduler") as conn:
            fn(conn, run_id, text)
    except Exception as exc:
        log.warning("could not annotate run %s: %s", run_id, exc)
