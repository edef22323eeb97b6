"""What `fmw status` and `fmw service status` show about operations: the schedule (next fire,
last handled fires, which process runs it) and the open SLA violations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from fmw.settings import Settings
from ledger import scheduling, sla
from ledger.db import connect
from ledger.scheduling import FireState
from ledger.sla import Violation
from scheduler.config import OpsConfig
from scheduler.core import CRON_JOB, INTERVAL_JOB, next_due


@dataclass(frozen=True)
class OpsStatus:
    cron: str | None
    timezone: str
    interval_minutes: float | None
    next_fire: datetime | None  # by the config, whether or not a service host is running
    last_fires: tuple[FireState, ...]
    scheduler_holder: dict[str, Any] | None  # the session running the schedule, if any
    open_violations: tuple[Violation, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "cron": self.cron, "timezone": self.timezone,
            "interval_minutes": self.interval_minutes,
            "next_fire": self.next_fire.isoformat() if self.next_fire else None,
            "last_fires": [f.as_json() for f in self.last_fires],
            "scheduler_running": self.scheduler_holder is not None,
            "scheduler_holder": self.scheduler_holder,
            "open_violations": [v.as_json() for v in self.open_violations],
        }

    def lines(self) -> list[str]:
        """Plain text lines for a terminal."""
        sched = f"cron {self.cron!r} ({self.timezone})" if self.cron else "no cron"
        if self.interval_minutes:
            sched += f", every {self.interval_minutes:g} min"
        out = [f"schedule: {sched}; next fire "
               f"{self.next_fire.isoformat(timespec='seconds') if self.next_fire else '-'}",
               "scheduler: " + (f"running ({self.scheduler_holder['application_name']}, since "
                                f"{self.scheduler_holder['since']})" if self.scheduler_holder
                                else "not running (no `fmw service run` holds the schedule)")]
        for f in self.last_fires:
            out.append(f"  {f.job_id}: last fire {f.last_fire_at.isoformat(timespec='seconds')}"
                       f" -> {f.last_outcome or '-'} (run {f.last_run_id or '-'})")
        if not self.open_violations:
            out.append("SLA: no open violations")
        for v in self.open_violations:
            out.append(f"SLA VIOLATED {v.sla_name} since {v.opened_at.isoformat(timespec='seconds')}"
                       f": {v.detail}")
        return out


def next_fire(config: OpsConfig, now: datetime | None = None) -> datetime | None:
    """The next cron fire after `now` (pure; the interval's depends on the last fire)."""
    now = now or datetime.now(UTC)
    return next_due(config, CRON_JOB, now) if config.cron else None


def ops_status(settings: Settings, conn: psycopg.Connection | None = None) -> OpsStatus:
    """Read the operations status (opens its own connection unless given one).

    Raises:
        DatabaseUnavailable: the ledger cannot be reached.
    """
    config = OpsConfig.from_settings(settings)
    own = conn is None
    c = conn or connect(settings, autocommit=True, application_name="fmw-status")
    try:
        states = scheduling.fire_states(c)
        holder = scheduling.scheduler_lock_holder(c, settings.schema)
        violations = sla.open_violations(c)
    finally:
        if own:
            c.close()
    fires = tuple(states[k] for k in (CRON_JOB, INTERVAL_JOB) if k in states)
    return OpsStatus(
        cron=config.cron, timezone=config.timezone,
        interval_minutes=config.interval.total_seconds() / 60 if config.interval else None,
        next_fire=next_fire(config), last_fires=fires, scheduler_holder=holder,
        open_violations=tuple(violations))
