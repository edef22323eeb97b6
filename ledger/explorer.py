"""What the Streamlit explorer writes to and reads from the ledger: page views (the adoption
KPI, weekly active users), the open SLA violations shown on Home, and the audit row of each
download of a scoped user's rows.

The explorer never needs PostgreSQL to show data (it reads snapshots); these calls run in its
background thread and a failure only leaves the figures out of date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from ledger.audit import AuditEntry, append

#: Distinct clients over this many days ending today make one "weekly active users" figure.
WEEK = 7
MAX_TEXT = 200


@dataclass(frozen=True)
class ViewCount:
    """`views` page views of `page` from `client` (an address) on `day` (in the FMW time zone)."""

    day: date
    client: str
    page: str
    views: int


@dataclass(frozen=True)
class DayUsage:
    day: date
    views: int
    clients: int


@dataclass(frozen=True)
class UsageSummary:
    """Per day (oldest first, days without views included) and the weekly active users: distinct
    clients over the 7 days ending `today`, and over the 7 days before."""

    today: date
    per_day: tuple[DayUsage, ...]
    weekly_active: int
    previous_weekly_active: int
    clients_in_period: int


@dataclass(frozen=True)
class SlaViolation:
    id: int
    sla_name: str
    kind: str
    opened_at: datetime
    observed: float | None
    threshold: float | None
    detail: str


def record_page_views(conn: psycopg.Connection, counts: Sequence[ViewCount]) -> int:
    """Add `counts` to the stored per-day counts in one transaction; returns the rows touched."""
    rows = [(c.day, c.client[:MAX_TEXT], c.page[:MAX_TEXT], c.views) for c in counts
            if c.views > 0 and c.client.strip() and c.page.strip()]
    if not rows:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ui_page_views (day, client, page, views) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (day, client, page) DO UPDATE SET "
            "views = ui_page_views.views + EXCLUDED.views, last_seen_at = now()",
            rows,
        )
    return len(rows)


def usage_summary(conn: psycopg.Connection, today: date, days: int = 28) -> UsageSummary:
    """Views and distinct clients per day over `days` days ending `today`, and the WAU."""
    first = today - timedelta(days=max(days, 2 * WEEK) - 1)
    per = {r[0]: DayUsage(r[0], int(r[1]), int(r[2])) for r in conn.execute(
        "SELECT day, sum(views), count(DISTINCT client) FROM ui_page_views "
        "WHERE day BETWEEN %s AND %s GROUP BY day", (first, today)).fetchall()}
    row = conn.execute(
        "SELECT count(DISTINCT client) FILTER (WHERE day > %s), "
        "count(DISTINCT client) FILTER (WHERE day <= %s AND day > %s), "
        "count(DISTINCT client) FILTER (WHERE day > %s) "
        "FROM ui_page_views WHERE day BETWEEN %s AND %s",
        (today - timedelta(days=WEEK), today - timedelta(days=WEEK),
         today - timedelta(days=2 * WEEK), today - timedelta(days=days), first, today),
    ).fetchone()
    assert row is not None
    shown = [today - timedelta(days=i) for i in range(days - 1, -1, -1)]
    return UsageSummary(today, tuple(per.get(d, DayUsage(d, 0, 0)) for d in shown),
                        int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))


def open_sla_violations(conn: psycopg.Connection, limit: int = 50) -> list[SlaViolation]:
    """Violations not closed yet, newest first (empty when the SLA table does not exist)."""
    exists = conn.execute("SELECT to_regclass('sla_violations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute(
        "SELECT id, sla_name, kind, opened_at, observed, threshold, detail FROM sla_violations "
        "WHERE closed_at IS NULL ORDER BY opened_at DESC LIMIT %s", (limit,)).fetchall()
    return [SlaViolation(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


@dataclass(frozen=True)
class OpsFigures:
    """The operations KPIs Home shows beside the data (each None when not available)."""

    problems_open: int | None = None
    problems_new_today: int | None = None
    problems_fixed_today: int | None = None
    oldest_problem: str | None = None
    incidents_month: int | None = None
    downtime_month_s: float | None = None
    incidents_open: int | None = None
    p95_24h_ms: float | None = None
    requests_24h: int | None = None


def ops_figures(conn: psycopg.Connection, today_start: datetime, timezone: str) -> OpsFigures:
    """Bad rows open/new/fixed today, this month's incidents and downtime, the v1 p95 over
    24 h; a part whose table is missing (an older schema) is left None."""
    from ledger import incidents, latency, problems
    found: dict[str, object] = {}
    try:
        with conn.transaction():
            p = problems.summary(conn, today_start, oldest=1)
        found.update(problems_open=p.open, problems_new_today=p.new_since,
                     problems_fixed_today=p.fixed_since,
                     oldest_problem=(f"{p.oldest[0]['source']}: {p.oldest[0]['reason']}"
                                     if p.oldest else None))
    except psycopg.errors.UndefinedTable:
        pass
    try:
        with conn.transaction():
            i = incidents.this_month(conn, timezone)
        found.update(incidents_month=i.count, downtime_month_s=i.downtime_s,
                     incidents_open=len(i.open))
    except psycopg.errors.UndefinedTable:
        pass
    try:
        with conn.transaction():
            rows = latency.window(conn, timedelta(hours=24), "/api/v1")
        found.update(p95_24h_ms=max((r.p95_ms for r in rows), default=0.0),
                     requests_24h=sum(r.requests for r in rows))
    except psycopg.errors.UndefinedTable:
        pass
    return OpsFigures(**found)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DownloadAudit:
    """One download of a scoped user's rows from the explorer: who (`subject`, `user_name`)
    from which address (`client`), the route `path` (without its token) and what (`detail`)."""

    client: str
    path: str
    detail: str
    subject: str | None
    user_name: str | None


def audit_download(conn: psycopg.Connection, download: DownloadAudit) -> int:
    """Append the audit row of an explorer download (written before the file is sent, like
    the API's row for a scoped user's export); returns its seq.

    Raises:
        psycopg.Error: the row could not be written; the download must then not happen.
    """
    return append(conn, AuditEntry(
        client=download.client, method="GET", path=download.path, query="", status=200,
        detail=download.detail, subject=download.subject, user_name=download.user_name))
