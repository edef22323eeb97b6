"""The sync scheduler: one APScheduler (UTC, in-memory job store) per service host.

Why an in-memory job store plus a persisted fire time, not APScheduler's SQLAlchemy store:
the schedule comes from the config file on every start (a stored, pickled job would keep a
stale cron after the config changed), the store would be SQL outside `ledger/`, and APScheduler
3 must not share a job store between processes anyway. What has to survive a restart is only
*when the schedule last fired*: `scheduler_state.last_fire_at`. On start the scheduler asks the
trigger for the first fire time after it; if that lies in the past, fires were missed while
the service was down and exactly one catch-up sync runs (however many were missed).

Only one scheduler per schema fires the schedule and the SLA checks: it holds a session-level
advisory lock (`ledger.scheduling.try_scheduler_lock`) on its own connection. Another host
stays on standby and takes over when the lock frees up. Syncs triggered through the dev API
run on the same APScheduler (a one-off job), on every host. Two syncs never overlap, across
processes: the sync lock makes the later trigger a 'skipped' run.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from fmw.errors import FmwError, SyncAlreadyRunning, SyncFailed
from fmw.settings import Settings
from ledger import incidents, scheduling
from ledger.db import connect
from ledger.sync import SyncPlan, plan_sync
from scheduler.config import OpsConfig
from scheduler.jobs import JobResult, sync_and_publish
from scheduler.runner import Job, SyncOutcome, run_with_retry
from scheduler.sla import LatencySource, check_slas

log = logging.getLogger(__name__)

CRON_JOB = "sync-cron"
INTERVAL_JOB = "sync-interval"
CATCH_UP_JOB = "sync-catchup"
SLA_JOB = "sla-check"
DIGEST_JOB = "daily-digest"
LEADER_JOB = "leader"
SCHEDULE_JOBS = (CRON_JOB, INTERVAL_JOB)


def next_due(config: OpsConfig, job_id: str, last_fire: datetime) -> datetime | None:
    """The first fire of `job_id` after `last_fire` (pure; None when the job is not configured)."""
    if job_id == CRON_JOB and config.cron:
        trigger = CronTrigger.from_crontab(config.cron, timezone=config.timezone)
        nxt = trigger.get_next_fire_time(None, last_fire + timedelta(seconds=1))
        return nxt.astimezone(UTC) if nxt is not None else None
    if job_id == INTERVAL_JOB and config.interval:
        return last_fire + config.interval
    return None


def overdue_jobs(config: OpsConfig, last_fires: dict[str, datetime], now: datetime) -> list[str]:
    """Schedule jobs with a fire due between their last handled fire and `now` (pure)."""
    out = []
    for job_id in SCHEDULE_JOBS:
        last = last_fires.get(job_id)
        due = next_due(config, job_id, last) if last is not None else None
        if due is not None and due <= now:
            out.append(job_id)
    return out


class SyncScheduler:
    """Runs scheduled, catch-up and API-triggered syncs and the SLA checks."""

    def __init__(self, settings: Settings, config: OpsConfig, *, job: Job = sync_and_publish,
                 metrics: LatencySource | None = None,
                 digest: Callable[[], object] | None = None) -> None:
        self.settings = settings
        self.config = config
        self.job = job
        self.metrics = metrics
        self.digest = digest
        self.stop_event = threading.Event()
        self._aps = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(8)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": config.misfire_grace_s},
        )
        self._aps.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._leader_conn: psycopg.Connection | None = None
        self._state_lock = threading.Lock()
        self._active = 0
        self._idle = threading.Condition(self._state_lock)
        self.last_outcome: SyncOutcome | None = None
        self.last_sla_error: str | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start APScheduler; leadership (and with it the schedule) is sought at once, then every
        `leader_retry_s` seconds, in the background, so a database that is down delays only
        the schedule, not the service."""
        self._aps.start()
        self._aps.add_job(self._leader_tick, IntervalTrigger(seconds=self.config.leader_retry_s),
                          id=LEADER_JOB, next_run_time=datetime.now(UTC))
        log.info("scheduler started: cron %r (%s), interval %s, SLA checks every %g s",
                 self.config.cron, self.config.timezone, self.config.interval,
                 self.config.sla_interval_s)

    @property
    def leader(self) -> bool:
        return self._leader_conn is not None

    @property
    def active_syncs(self) -> int:
        with self._state_lock:
            return self._active

    def shutdown(self, grace_s: float | None = None, abort_timeout_s: float = 30.0) -> bool:
        """Stop firing; let a running sync finish for `grace_s`, then cancel it (its transaction
        rolls back, the run is recorded as aborted). Returns True when no sync is left running.
        """
        grace = self.config.stop_grace_s if grace_s is None else grace_s
        self.stop_event.set()
        if self._aps.running:
            self._aps.shutdown(wait=False)
        finished = self._wait_idle(grace)
        if not finished:
            log.warning("a sync is still running after %g s: cancelling it", grace)
            finished = self._abort_running(abort_timeout_s)
        self._release_leadership()
        log.info("scheduler stopped%s", "" if finished else " (a sync did not stop in time)")
        return finished

    def _wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout=timeout)

    def _abort_running(self, timeout: float) -> bool:
        """Cancel this process's running sync statement until the sync thread gives up.

        The leader's open session is used when there is one: a PostgreSQL in "smart" shutdown
        (SIGTERM to the whole service group) still serves open sessions but refuses new ones.
        """
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        own = None
        try:
            conn = self._leader_conn
            if conn is None:
                conn = own = connect(self.settings, autocommit=True,
                                     application_name="fmw-scheduler-stop")
            while datetime.now(UTC) < deadline:
                run_id = scheduling.own_running_run(conn)
                if run_id is not None:
                    scheduling.cancel_run_statement(conn, self.settings.schema, run_id)
                if self._wait_idle(0.5):
                    return True
        except (FmwError, psycopg.Error) as exc:
            log.error("cannot cancel the running sync: %s", exc)
        finally:
            if own is not None:
                own.close()
        return self._wait_idle(max(0.0, (deadline - datetime.now(UTC)).total_seconds()))

    # -- leadership ----------------------------------------------------------------------------
    def _leader_tick(self) -> None:
        if self.stop_event.is_set():
            return
        if self._leader_conn is not None:
            try:
                scheduling.ping(self._leader_conn)
                return
            except psycopg.Error as exc:
                log.warning("lost the scheduler lock's connection (%s); the schedule pauses", exc)
                self._release_leadership()
        try:
            conn = connect(self.settings, autocommit=True, application_name="fmw-scheduler")
        except FmwError as exc:
            log.warning("scheduler standby, the database is unavailable: %s", exc)
            return
        try:
            if not scheduling.try_scheduler_lock(conn, self.settings.schema):
                conn.close()
                log.info("another scheduler runs the schedule of schema %r; standing by",
                         self.settings.schema)
                return
            self._leader_conn = conn
            self._install_schedule()
        except Exception:
            log.exception("could not install the schedule")
            self._release_leadership()

    def _release_leadership(self) -> None:
        for job_id in (*SCHEDULE_JOBS, CATCH_UP_JOB, SLA_JOB):
            try:
                self._aps.remove_job(job_id)
            except Exception:  # noqa: S110 - not scheduled (or the scheduler is shut down)
                pass
        conn, self._leader_conn = self._leader_conn, None
        if conn is not None:
            try:
                conn.close()  # the session ends, so PostgreSQL releases the lock
            except Exception:  # noqa: S110 - already broken
                pass

    def _install_schedule(self) -> None:
        now = datetime.now(UTC)
        assert self._leader_conn is not None
        states = scheduling.fire_states(self._leader_conn)
        last = {k: v.last_fire_at for k, v in states.items()}
        cfg = self.config
        if cfg.cron:
            self._aps.add_job(self._fire, CronTrigger.from_crontab(cfg.cron, timezone=cfg.timezone),
                              id=CRON_JOB, args=(CRON_JOB,), replace_existing=True)
        if cfg.interval:
            start = now + cfg.interval
            if INTERVAL_JOB in last and last[INTERVAL_JOB] + cfg.interval > now:
                start = last[INTERVAL_JOB] + cfg.interval
            self._aps.add_job(self._fire, IntervalTrigger(seconds=cfg.interval.total_seconds(),
                                                          start_date=start, timezone=UTC),
                              id=INTERVAL_JOB, args=(INTERVAL_JOB,), replace_existing=True)
        configured = [j for j in SCHEDULE_JOBS if next_due(cfg, j, now) is not None]
        for job_id in configured:
            if job_id not in last:  # first start: a baseline, nothing is overdue yet
                scheduling.record_fire(self._leader_conn, job_id, now, outcome="baseline")
        due = overdue_jobs(cfg, last, now) if cfg.catch_up else []
        if due:
            log.info("missed while the service was down: %s; one catch-up sync now",
                     ", ".join(due))
            self._schedule_catch_up(due)
        self._aps.add_job(self._sla_tick, IntervalTrigger(seconds=cfg.sla_interval_s),
                          id=SLA_JOB, replace_existing=True,
                          next_run_time=now + timedelta(seconds=min(5.0, cfg.sla_interval_s)))
        if cfg.digest_at is not None and self.digest is not None:
            self._aps.add_job(self._digest_tick, CronTrigger(
                hour=cfg.digest_at.hour, minute=cfg.digest_at.minute, timezone=cfg.timezone),
                id=DIGEST_JOB, replace_existing=True)
        log.info("this process runs the schedule of schema %r", self.settings.schema)

    def _schedule_catch_up(self, job_ids: list[str]) -> None:
        # One id: a second request before it ran replaces it instead of adding another run.
        self._aps.add_job(self._catch_up, "date", run_date=datetime.now(UTC), id=CATCH_UP_JOB,
                          args=(sorted(set(job_ids)),), replace_existing=True,
                          misfire_grace_time=None)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        """A scheduled fire came later than the misfire grace (e.g. the machine slept): run one
        catch-up instead of silently dropping it."""
        if event.job_id in SCHEDULE_JOBS and not self.stop_event.is_set() and self.leader:
            log.warning("scheduled fire of %s at %s was missed by more than %s s; catching up",
                        event.job_id, event.scheduled_run_time, self.config.misfire_grace_s)
            self._schedule_catch_up([event.job_id])

    # -- jobs ----------------------------------------------------------------------------------
    def _digest_tick(self) -> None:
        """The daily digest (one webhook message); its failure is logged, never fatal."""
        if self.digest is None or self.stop_event.is_set():
            return
        try:
            self.digest()
        except Exception:
            log.exception("daily digest not sent")

    def _fire(self, job_id: str) -> None:
        self._scheduled([job_id], "schedule")

    def _catch_up(self, job_ids: list[str]) -> None:
        self._scheduled(job_ids, "catchup")

    def _scheduled(self, job_ids: list[str], trigger: str) -> None:
        fired_at = datetime.now(UTC)
        try:
            plan = plan_sync(self.settings, trigger=trigger)
        except FmwError as exc:
            log.error("scheduled sync not started: %s", exc)
            outcome = None
        else:
            outcome = self._execute(plan)
        if outcome is not None and outcome.status == "aborted":
            return  # not handled: the next start catches up
        try:
            with connect(self.settings, autocommit=True, application_name="fmw-scheduler") as c:
                for job_id in job_ids:
                    scheduling.record_fire(c, job_id, fired_at, outcome.run_id if outcome else None,
                                           outcome.status if outcome else "not started")
                _sync_incident(c, outcome)
        except FmwError as exc:
            log.warning("could not persist the fire time of %s: %s", ", ".join(job_ids), exc)

    def _execute(self, plan: SyncPlan) -> SyncOutcome:
        with self._state_lock:
            self._active += 1
        try:
            outcome = run_with_retry(self.settings, plan, self.config.retry,
                                     stop=self.stop_event, job=self.job)
            self.last_outcome = outcome
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()
        self._sla_tick()  # freshness and deadline violations close as soon as a sync fixes them
        return outcome

    def _sla_tick(self) -> None:
        if self.stop_event.is_set() or not self.leader:
            return
        try:
            check_slas(self.settings, self.config, metrics=self.metrics)
            self.last_sla_error = None
        except Exception as exc:
            self.last_sla_error = str(exc)
            log.warning("SLA check failed: %s", exc)

    # -- triggers ------------------------------------------------------------------------------
    def trigger_now(self, plan: SyncPlan) -> SyncOutcome:
        """Run `plan` now as a one-off APScheduler job and wait for its outcome.

        Raises:
            FmwError: the service is stopping (no sync was started).
        """
        done: Future[SyncOutcome] = Future()

        def work() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                done.set_result(self._execute(plan))
            except BaseException as exc:
                done.set_exception(exc)

        if self.stop_event.is_set() or not self._aps.running:
            raise FmwError("the FMW service is stopping; no new sync was started")
        self._aps.add_job(work, "date", run_date=datetime.now(UTC),
                          id=f"sync-{plan.trigger}-{uuid.uuid4().hex[:8]}",
                          misfire_grace_time=None)
        while True:
            try:
                return done.result(timeout=0.5)
            except TimeoutError:
                if self.stop_event.is_set() and done.cancel():
                    raise FmwError("the FMW service is stopping; no new sync was started") \
                        from None

    def api_job(self) -> Callable[[Settings, SyncPlan], JobResult]:
        """A job for `api.launcher.SyncLauncher`: dev API triggers go through this scheduler.

        Raises (from the returned callable) what the launcher expects: SyncAlreadyRunning for
        a skipped trigger, SyncFailed for a failed run, the original error otherwise.
        """
        def job(settings: Settings, plan: SyncPlan) -> JobResult:
            del settings  # the scheduler's own
            outcome = self.trigger_now(plan)
            if outcome.result is not None:
                return outcome.result
            exc = outcome.exception
            if isinstance(exc, SyncAlreadyRunning | SyncFailed):
                raise exc
            if outcome.status == "aborted" and outcome.run_id is not None:
                raise SyncFailed(outcome.run_id, outcome.error or "aborted")
            raise exc or FmwError(outcome.error or "the sync did not run")
        return job

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """For `/api/dev/health` (`Services.scheduler_status`)."""
        jobs = []
        if self._aps.running:
            for j in self._aps.get_jobs():
                nxt = getattr(j, "next_run_time", None)
                jobs.append({"id": j.id, "next_run_time": nxt.isoformat() if nxt else None})
        state = ("stopping" if self.stop_event.is_set() else
                 "running" if self.leader else "standby" if self._aps.running else "stopped")
        return {
            "status": state, "leader": self.leader, "cron": self.config.cron,
            "timezone": self.config.timezone,
            "interval_minutes": (self.config.interval.total_seconds() / 60
                                 if self.config.interval else None),
            "jobs": jobs, "active_syncs": self.active_syncs,
            "last_outcome": self.last_outcome.as_json() if self.last_outcome else None,
            "last_sla_error": self.last_sla_error,
        }


def _sync_incident(conn: psycopg.Connection, outcome: SyncOutcome | None) -> None:
    """A scheduled sync that failed past its retries opens an incident; one that applied
    closes it."""
    if outcome is None or outcome.status == "failed":
        detail = (f"scheduled sync failed after {outcome.attempts} attempt(s): {outcome.error}"
                  if outcome is not None else "scheduled sync could not be started")
        if incidents.open_incident(conn, "sync", "scheduled", detail):
            log.error("incident opened: %s", detail)
    elif outcome.status in ("succeeded", "partial"):
        if incidents.close_incident(conn, "sync", None, f"run {outcome.run_id} applied"):
            log.info("incident closed: run %s applied", outcome.run_id)
