"""Start a sync from the dev API: it runs in a worker thread; the caller gets its run id.

The run id is created inside the sync (its `runs` row), so `launch` waits briefly until that
row appears (or the worker ends first, e.g. because another process holds the sync lock).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.gateway import LedgerGateway
from fmw.errors import FmwError, SyncAlreadyRunning, SyncFailed
from fmw.settings import Settings
from ledger.sync import SyncPlan, plan_sync

log = logging.getLogger(__name__)

TRIGGER = "api"
Job = Callable[[Settings, SyncPlan], Any]


def _default_job(settings: Settings, plan: SyncPlan) -> Any:
    from scheduler.jobs import sync_and_publish
    return sync_and_publish(settings, plan)


@dataclass(frozen=True)
class Launched:
    run_id: int
    finished: bool  # the worker already ended (small syncs can finish before we look)


class SyncLauncher:
    def __init__(self, settings: Settings, gateway: LedgerGateway, job: Job = _default_job,
                 wait_s: float = 15.0) -> None:
        self.settings = settings
        self.gateway = gateway
        self.job = job
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._run_id: int | None = None
        self._outcome: BaseException | Any = None
        self._done = threading.Event()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def launch(self) -> Launched:
        """Start one sync in the background.

        Raises:
            SyncAlreadyRunning: this server or another process is syncing (with its run id).
            FmwError: nothing to sync (no sources), or the database is unavailable.
        """
        plan = plan_sync(self.settings, trigger=TRIGGER)
        with self._lock:
            if self.busy:
                raise SyncAlreadyRunning(self._run_id or self.gateway.running_run_id())
            before = self.gateway.max_run_id()
            self._run_id, self._outcome = None, None
            self._done = threading.Event()
            done = self._done
            self._thread = threading.Thread(target=self._work, args=(plan, done),
                                            name="fmw-api-sync", daemon=True)
            self._thread.start()
        deadline = time.monotonic() + self.wait_s
        while True:
            finished = done.wait(0.05)
            if finished:
                return self._finished(before)
            rid = self.gateway.newer_run_id(before, TRIGGER)
            if rid is not None:
                self._run_id = rid
                return Launched(rid, finished=False)
            if time.monotonic() > deadline:
                raise FmwError("the sync was started but its run did not appear within "
                               f"{self.wait_s:g} s; see GET /api/dev/runs")

    def _finished(self, before: int) -> Launched:
        out = self._outcome
        if isinstance(out, SyncAlreadyRunning):
            raise SyncAlreadyRunning(out.run_id or self.gateway.running_run_id())
        if isinstance(out, SyncFailed):  # it ran and failed: the run row says why
            return Launched(out.run_id, finished=True)
        if isinstance(out, BaseException):
            raise out
        sync = getattr(out, "sync", out)
        rid = getattr(sync, "run_id", None)
        if rid is None:
            rid = self.gateway.newer_run_id(before, TRIGGER)
        if rid is None:
            raise FmwError("the sync ended without a run id")
        return Launched(int(rid), finished=True)

    def _work(self, plan: SyncPlan, done: threading.Event) -> None:
        try:
            result = self.job(self.settings, plan)
            self._outcome = result
            log.info("api-triggered sync finished: %s", getattr(result, "sync", result))
        except SyncAlreadyRunning as exc:
            self._outcome = exc
        except SyncFailed as exc:
            self._outcome = exc
            log.warning("api-triggered sync failed: %s", exc)
        except BaseException as exc:  # reported to the caller, never lost silently
            self._outcome = exc
            log.exception("api-triggered sync crashed")
        finally:
            done.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a running sync; True when none is running afterwards."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self.busy
