"""Incidents (table `incidents`, migration 0008): what took FMW's service away, with start,
end and duration, for the KPI "Sev-2 at most 1 per month".

Kinds: `ledger` (the embedded PostgreSQL was down: recorded whole by the service host's watch
once it is back), `sync` (a scheduled sync failed past its retries, until a sync applies),
`stale` (the freshness SLA was violated, until it is met again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

IncidentKind = Literal["ledger", "sync", "stale"]


def open_incident(conn: psycopg.Connection, kind: IncidentKind, key: str, detail: str) -> bool:
    """Open one unless one of this kind and key is open; True when this call opened it."""
    row = conn.execute(
        "INSERT INTO incidents (kind, key, detail) VALUES (%s, %s, %s) "
        "ON CONFLICT (kind, key) WHERE closed_at IS NULL DO NOTHING RETURNING id",
        (kind, key, detail)).fetchone()
    return row is not None


def close_incident(conn: psycopg.Connection, kind: IncidentKind, key: str | None,
                   detail: str) -> int:
    """Close the open incidents of `kind` (and `key`, when given); how many were closed."""
    return conn.execute(
        "UPDATE incidents SET closed_at = clock_timestamp(), close_detail = %s "
        "WHERE closed_at IS NULL AND kind = %s AND (%s::text IS NULL OR key = %s)",
        (detail, kind, key, key)).rowcount


def record_incident(conn: psycopg.Connection, kind: IncidentKind, key: str, start: datetime,
                    end: datetime, detail: str, close_detail: str) -> None:
    """One incident already over (its start and end known only afterwards)."""
    conn.execute("INSERT INTO incidents (kind, key, opened_at, closed_at, detail, close_detail) "
                 "VALUES (%s, %s, %s, %s, %s, %s)", (kind, key, start, end, detail,
                                                     close_detail))


@dataclass(frozen=True)
class MonthIncidents:
    count: int
    downtime_s: float  # within the month; open ones count up to now
    open: tuple[dict[str, Any], ...]


def this_month(conn: psycopg.Connection, timezone: str) -> MonthIncidents:
    """Incidents that overlap the current month (in `timezone`) and the ones open now."""
    row = conn.execute(
        "WITH m AS (SELECT date_trunc('month', now() AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s "
        "AS start) SELECT count(*), coalesce(extract(epoch FROM sum(least(coalesce(closed_at, "
        "now()), now()) - greatest(opened_at, m.start))), 0) FROM incidents, m "
        "WHERE coalesce(closed_at, now()) >= m.start", {"tz": timezone}).fetchone()
    cur = conn.execute("SELECT kind, key, opened_at, detail FROM incidents WHERE closed_at IS "
                       "NULL ORDER BY opened_at")
    names = [d.name for d in cur.description or []]
    open_ = tuple(dict(zip(names, r, strict=True)) for r in cur.fetchall())
    return MonthIncidents(int(row[0]), float(row[1]), open_) if row else \
        MonthIncidents(0, 0.0, open_)
