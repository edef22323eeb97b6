"""The service host watches the embedded PostgreSQL: a server that died (crash, killed, stopped
by hand) is started again with back-off, and the admins are told once per outage.

An external PostgreSQL is the DBA's to run; nothing is watched then.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fmw.errors import FmwError
from fmw.settings import Settings
from ledger import incidents
from ledger.db import connect, embedded_alive, revive_embedded
from scheduler.alerts import post_json

log = logging.getLogger(__name__)

Notify = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class WatchPolicy:
    """Check every `interval_s`; after a failed restart wait `first_delay_s`, doubling up to
    `max_delay_s`, so a server that cannot start (disk full, broken data folder) is not
    hammered, yet comes back by itself once the cause is fixed."""

    interval_s: float = 10.0
    first_delay_s: float = 5.0
    max_delay_s: float = 300.0


class EmbeddedWatch:
    """Call `tick()` often (the service host's main loop does); it checks at most every
    `policy.interval_s` and never raises."""

    def __init__(self, settings: Settings, policy: WatchPolicy = WatchPolicy(), *,
                 notify: Notify | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.policy = policy
        self.notify = notify
        self.clock = clock
        self.down_since: float | None = None
        self.down_since_wall: float | None = None
        self.failures = 0
        self.restarts = 0
        self._next_check = 0.0

    @property
    def enabled(self) -> bool:
        return self.settings.embedded

    def tick(self) -> bool | None:
        """One check when due: True = running (or restarted), False = still down, None = not due
        or not watched."""
        now = self.clock()
        if not self.enabled or now < self._next_check:
            return None
        if embedded_alive(self.settings):
            self._next_check = now + self.policy.interval_s
            if self.down_since is not None:
                self._back_up(now)
            return True
        if self.down_since is None:
            self.down_since = now
            self.down_since_wall = time.time()
            log.error("ledger unreachable: the embedded PostgreSQL in %s is not running; "
                      "starting it again", self.settings.pg_dir)
            self._send("ledger_unreachable", "FMW ledger unreachable: the embedded PostgreSQL "
                       f"in {self.settings.pg_dir} stopped; the service host is restarting it")
        try:
            revive_embedded(self.settings)
        except FmwError as exc:
            self.failures += 1
            delay = min(self.policy.max_delay_s,
                        self.policy.first_delay_s * 2 ** (self.failures - 1))
            self._next_check = now + delay
            log.error("the embedded PostgreSQL did not start (attempt %d, next in %g s): %s",
                      self.failures, delay, exc)
            return False
        self.restarts += 1
        self._next_check = now + self.policy.interval_s
        self._back_up(now)
        return True

    def _back_up(self, now: float) -> None:
        down = now - (self.down_since or now)
        log.warning("the embedded PostgreSQL runs again (down %.0f s, %d failed start%s)",
                    down, self.failures, "" if self.failures == 1 else "s")
        self._send("ledger_reachable", f"FMW ledger back: the embedded PostgreSQL runs again "
                   f"after {down:.0f} s")
        self._record(down)
        self.down_since = None
        self.failures = 0

    def _record(self, down_s: float) -> None:
        """The outage as an incident, now that the ledger can take it (never fatal)."""
        start = datetime.fromtimestamp(self.down_since_wall or time.time() - down_s, UTC)
        end = start + timedelta(seconds=down_s)
        try:
            with connect(self.settings, autocommit=True, application_name="fmw-pgwatch") as c:
                incidents.record_incident(
                    c, "ledger", str(self.settings.pg_dir), start, end,
                    f"the embedded PostgreSQL in {self.settings.pg_dir} was down",
                    f"started again after {down_s:.0f} s ({self.failures} failed start(s))")
        except Exception as exc:  # an older schema, or down again: the log has it
            log.error("could not record the ledger outage as an incident: %s", exc)

    def _send(self, event: str, text: str) -> None:
        body = {"text": f"{text} [{socket.gethostname()}, schema {self.settings.schema}]",
                "event": event, "host": socket.gethostname(), "schema": self.settings.schema,
                "pg_dir": str(self.settings.pg_dir)}
        if self.notify is None:
            return
        try:
            self.notify(body)
        except Exception as exc:  # an alert that cannot be sent must not stop the watch
            log.error("could not send the %s alert: %s", event, exc)


def webhook_notify(url: str | None, timeout_s: float) -> Notify | None:
    """The alert sender for the configured webhook, or None when none is configured."""
    if not url:
        return None
    return lambda body: post_json(url, body, timeout_s)
