"""Read-only reports over the ledger for the dev API: run summaries, single changes, health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

COUNT_FIELDS = ("created", "updated", "deleted", "errors", "runs", "failed_runs")


@dataclass(frozen=True)
class DayCounts:
    day: date
    created: int = 0
    updated: int = 0
    deleted: int = 0
    errors: int = 0
    runs: int = 0
    failed_runs: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), **{k: getattr(self, k) for k in COUNT_FIELDS}}


@dataclass(frozen=True)
class RunsSummary:
    """Totals over `days` days ending on `last_day` (inclusive), the window before it, and
    one entry per day (days without a run count zero)."""

    days: int
    first_day: date
    last_day: date
    totals: dict[str, int]
    previous: dict[str, int]
    per_day: tuple[DayCounts, ...]


def today(conn: psycopg.Connection, timezone: str) -> date:
    row = conn.execute("SELECT (now() AT TIME ZONE %s)::date", (timezone,)).fetchone()
    assert row is not None
    return row[0]


def runs_summary(conn: psycopg.Connection, timezone: str, days: int,
                 include_today: bool = True) -> RunsSummary:
    """Counts from `daily_counts` for the Home cards.

    Args:
        days: window length in days (the API allows 1, 7, 14, 30).
        include_today: False ends the window yesterday (in `timezone`), for a finished day.
    """
    last = today(conn, timezone) - (timedelta(0) if include_today else timedelta(days=1))
    first = last - timedelta(days=days - 1)
    prev_first = first - timedelta(days=days)
    cols = ", ".join(COUNT_FIELDS)
    rows = conn.execute(f"SELECT day, {cols} FROM daily_counts WHERE day BETWEEN %s AND %s "
                        "ORDER BY day", (prev_first, last)).fetchall()
    by_day = {r[0]: DayCounts(r[0], *(int(v) for v in r[1:])) for r in rows}
    per_day = tuple(by_day.get(first + timedelta(days=i), DayCounts(first + timedelta(days=i)))
                    for i in range(days))
    previous = [d for day, d in by_day.items() if day < first]
    return RunsSummary(
        days=days, first_day=first, last_day=last,
        totals={k: sum(getattr(d, k) for d in per_day) for k in COUNT_FIELDS},
        previous={k: sum(getattr(d, k) for d in previous) for k in COUNT_FIELDS},
        per_day=per_day,
    )


def get_change(conn: psycopg.Connection, change_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, run_id, identity_hash, feature_group, op, changed_fields, changed_at, "
            "before_json, after_json FROM changes WHERE id = %s", (change_id,)
        ).fetchone()


def max_run_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()
    return int(row[0]) if row else 0


def newer_run_id(conn: psycopg.Connection, after: int, trigger: str) -> int | None:
    """The first run started after run `after` by `trigger` (to learn a background run's id)."""
    row = conn.execute("SELECT min(id) FROM runs WHERE id > %s AND trigger = %s",
                       (after, trigger)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def running_run_id(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT max(id) FROM runs WHERE status = 'running'").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def ping(conn: psycopg.Connection) -> dict[str, Any]:
    """Database facts for the health check: server version and the schema's revision."""
    row = conn.execute("SELECT current_setting('server_version'), current_schema()").fetchone()
    assert row is not None
    from ledger.schema import current_revision, head_revision
    rev = current_revision(conn, str(row[1]))
    return {"server_version": row[0], "schema": row[1], "revision": rev,
            "revision_current": rev == head_revision()}
