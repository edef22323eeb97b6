"""SLA definitions and violations (tables of migration 0004) and the run facts they are judged on.

Definitions are data: admins change thresholds with `fmw sla set` or SQL, no deploy. The
evaluation itself is pure and lives in `scheduler.sla`; this module only reads and writes rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal, get_args

import psycopg
from psycopg.rows import dict_row

from fmw.errors import FmwError

SlaKind = Literal["freshness", "daily_deadline", "success_rate", "api_p95"]
SLA_KINDS: tuple[str, ...] = get_args(SlaKind)

#: Run statuses that count as a successful sync (a partial run applied its good rows).
SUCCESS = ("succeeded", "partial")


@dataclass(frozen=True)
class SlaDefinition:
    """One row of `sla_definitions`.

    threshold: hours (freshness), a share 0..1 (success_rate) or seconds (api_p95).
    deadline: local time of day in the configured time zone (daily_deadline).
    """

    name: str
    kind: SlaKind
    enabled: bool
    threshold: float | None
    deadline: time | None
    window_days: int | None
    min_samples: int
    description: str
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["deadline"] = self.deadline.strftime("%H:%M") if self.deadline else None
        d["updated_at"] = self.updated_at.isoformat()
        return d


@dataclass(frozen=True)
class Violation:
    """One row of `sla_violations`; open while `closed_at` is None."""

    id: int
    sla_name: str
    kind: str
    opened_at: datetime
    closed_at: datetime | None
    observed: float | None
    threshold: float | None
    detail: str
    close_detail: str | None
    alerted_at: datetime | None
    alert_attempts: int
    alert_error: str | None
    resolved_alerted_at: datetime | None

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def as_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("opened_at", "closed_at", "alerted_at", "resolved_alerted_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        d["open"] = self.open
        return d


@dataclass(frozen=True)
class RunFacts:
    """What the run-based SLAs are judged on, read in one go."""

    now: datetime
    today: date  # in the configured time zone
    last_success_at: datetime | None
    first_success_today_at: datetime | None
    #: window (days) -> (days on which a sync applied, days on which a sync finished): the
    #: success rate is a share of days, not of runs (a failed run retried to success the same
    #: day is one good day; three failed runs on one bad day are one bad day)
    window_days: dict[int, tuple[int, int]]
    #: window -> (days whose only applied syncs were partial, bad rows of the partial runs)
    window_partial: dict[int, tuple[int, int]] = field(default_factory=dict)


_DEF_COLS = ("name, kind, enabled, threshold, deadline, window_days, min_samples, description, "
             "updated_at")
_VIOL_COLS = ("id, sla_name, kind, opened_at, closed_at, observed, threshold, detail, "
              "close_detail, alerted_at, alert_attempts, alert_error, resolved_alerted_at")


def list_definitions(conn: psycopg.Connection, enabled_only: bool = False) -> list[SlaDefinition]:
    where = " WHERE enabled" if enabled_only else ""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_DEF_COLS} FROM sla_definitions{where} ORDER BY name").fetchall()
    return [SlaDefinition(**r) for r in rows]


def update_definition(conn: psycopg.Connection, name: str, **changes: Any) -> SlaDefinition:
    """Change `threshold`, `deadline`, `window_days`, `min_samples`, `enabled`, `description`.

    Raises:
        FmwError: unknown SLA or field, or a value the table's checks refuse.
    """
    allowed = {"threshold", "deadline", "window_days", "min_samples", "enabled", "description"}
    bad = sorted(set(changes) - allowed)
    if bad:
        raise FmwError(f"cannot change {', '.join(bad)} of an SLA; changeable: "
                       f"{', '.join(sorted(allowed))}")
    if not changes:
        raise FmwError("nothing to change")
    sets = ", ".join(f"{k} = %({k})s" for k in changes)
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(f"UPDATE sla_definitions SET {sets}, updated_at = now() "
                              f"WHERE name = %(name)s RETURNING {_DEF_COLS}",
                              {**changes, "name": name}).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise FmwError(f"SLA {name!r}: value refused ({exc.diag.message_primary})") from exc
    if row is None:
        known = ", ".join(d.name for d in list_definitions(conn)) or "none"
        raise FmwError(f"no SLA named {name!r}; defined: {known}")
    return SlaDefinition(**row)


def open_violations(conn: psycopg.Connection) -> list[Violation]:
    """The violations not closed yet, oldest first (for `/api/dev/sla` and `fmw status`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_VIOL_COLS} FROM sla_violations WHERE closed_at IS NULL "
                           "ORDER BY opened_at").fetchall()
    return [Violation(**r) for r in rows]


def recent_violations(conn: psycopg.Connection, limit: int = 50) -> list[Violation]:
    """Open and closed violations, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_VIOL_COLS} FROM sla_violations ORDER BY id DESC LIMIT %s",
                           (limit,)).fetchall()
    return [Violation(**r) for r in rows]


def open_violation(conn: psycopg.Connection, d: SlaDefinition, observed: float | None,
                   detail: str) -> Violation | None:
    """Open a violation of `d` unless one is open already. Returns it only when newly opened,
    so exactly one caller (in any process) gets to send its alert."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO sla_violations (sla_name, kind, observed, threshold, detail) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sla_name) WHERE closed_at IS NULL "
            f"DO NOTHING RETURNING {_VIOL_COLS}",
            (d.name, d.kind, observed, _threshold_of(d), detail)).fetchone()
    return Violation(**row) if row else None


def _threshold_of(d: SlaDefinition) -> float | None:
    if d.kind == "daily_deadline" and d.deadline is not None:
        return d.deadline.hour + d.deadline.minute / 60  # hours after local midnight
    return d.threshold


def refresh_open(conn: psycopg.Connection, violation_id: int, observed: float | None,
                 detail: str) -> None:
    """Update what a still-open violation observes now (no new alert)."""
    conn.execute("UPDATE sla_violations SET observed = %s, detail = %s WHERE id = %s",
                 (observed, detail, violation_id))


def close_violation(conn: psycopg.Connection, violation_id: int, detail: str) -> Violation | None:
    """Close an open violation; returns it when this call closed it."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE sla_violations SET closed_at = clock_timestamp(), close_detail = %s "
            f"WHERE id = %s AND closed_at IS NULL RETURNING {_VIOL_COLS}",
            (detail, violation_id)).fetchone()
    return Violation(**row) if row else None


def close_orphans(conn: psycopg.Connection) -> int:
    """Close open violations whose SLA was disabled or deleted (they can no longer be fixed)."""
    cur = conn.execute(
        "UPDATE sla_violations v SET closed_at = clock_timestamp(), "
        "close_detail = 'the SLA was disabled or removed' WHERE closed_at IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM sla_definitions d WHERE d.name = v.sla_name AND d.enabled)")
    return cur.rowcount


def record_alert(conn: psycopg.Connection, violation_id: int, *, resolved: bool,
                 error: str | None) -> None:
    """Note one delivery attempt of a violation's alert (or of its resolved notice)."""
    if error is not None:
        conn.execute("UPDATE sla_violations SET alert_attempts = alert_attempts + 1, "
                     "alert_error = %s WHERE id = %s", (error, violation_id))
    elif resolved:
        conn.execute("UPDATE sla_violations SET resolved_alerted_at = clock_timestamp(), "
                     "alert_error = NULL WHERE id = %s", (violation_id,))
    else:
        conn.execute("UPDATE sla_violations SET alerted_at = clock_timestamp(), "
                     "alert_attempts = alert_attempts + 1, alert_error = NULL WHERE id = %s",
                     (violation_id,))


def undelivered(conn: psycopg.Connection, max_attempts: int) -> list[Violation]:
    """Open violations whose alert has not reached the webhook yet (attempts left)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_VIOL_COLS} FROM sla_violations WHERE closed_at IS NULL "
                           "AND alerted_at IS NULL AND alert_attempts < %s ORDER BY id",
                           (max_attempts,)).fetchall()
    return [Violation(**r) for r in rows]


def run_facts(conn: psycopg.Connection, timezone: str, windows: set[int]) -> RunFacts:
    """Last successful sync, today's first success (local day) and success counts per window.

    Skipped runs and failed attempts that the scheduler retried do not count; running ones
    neither (they have no outcome yet).
    """
    row = conn.execute(
        "SELECT clock_timestamp(), (clock_timestamp() AT TIME ZONE %(tz)s)::date, "
        "(SELECT max(finished_at) FROM runs WHERE status = ANY(%(ok)s)), "
        "(SELECT min(finished_at) FROM runs WHERE status = ANY(%(ok)s) "
        " AND (finished_at AT TIME ZONE %(tz)s)::date = (clock_timestamp() AT TIME ZONE %(tz)s)::date)",
        {"tz": timezone, "ok": list(SUCCESS)}).fetchone()
    assert row is not None
    counts: dict[int, tuple[int, int]] = {}
    partial: dict[int, tuple[int, int]] = {}
    for days in sorted(windows):
        c = conn.execute(
            "SELECT count(*) FILTER (WHERE applied), count(*), "
            "count(*) FILTER (WHERE applied AND NOT fully), coalesce(sum(bad), 0) FROM ("
            " SELECT (started_at AT TIME ZONE %(tz)s)::date AS day,"
            " bool_or(status = ANY(%(ok)s)) AS applied, bool_or(status = 'succeeded') AS fully,"
            " sum(rows_bad) FILTER (WHERE status = 'partial') AS bad FROM runs"
            " WHERE status IN ('succeeded', 'partial', 'failed') AND NOT retried"
            " AND started_at >= clock_timestamp() - make_interval(days => %(days)s)"
            " GROUP BY 1) per_day",
            {"tz": timezone, "ok": list(SUCCESS), "days": days}).fetchone()
        counts[days] = (int(c[0]), int(c[1])) if c else (0, 0)
        partial[days] = (int(c[2]), int(c[3])) if c else (0, 0)
    return RunFacts(now=row[0], today=row[1], last_success_at=row[2],
                    first_success_today_at=row[3], window_days=counts, window_partial=partial)


def sla_report(conn: psycopg.Connection, recent: int = 20) -> dict[str, Any]:
    """Everything `/api/dev/sla` shows, as JSON-ready data: definitions, open violations and
    the most recent ones (open or closed)."""
    return {"definitions": [d.as_json() for d in list_definitions(conn)],
            "open": [v.as_json() for v in open_violations(conn)],
            "recent": [v.as_json() for v in recent_violations(conn, recent)]}
