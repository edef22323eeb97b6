"""Bad rows as open items (table `data_problems`, migration 0007).

A quarantined row is one problem, known by its source and a key (kind, reason and the row's
identity or, without one, its cells). It is *open* from the first run that delivered it until
an applied run of that source no longer does (then *fixed*). Re-delivering the same bad row
every day is one open problem, not a new error a day. Rows above `source_max_stored_errors`
are counted in the run but not tracked here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_KEY = "md5(e.kind || '|' || e.reason || '|' || coalesce(e.identity_hash, e.raw::text, ''))"


def track(conn: psycopg.Connection, run_id: int, sources: Sequence[str]) -> tuple[int, int]:
    """Record this applied run's quarantined rows and close the problems of `sources` it no
    longer delivers; returns (new, fixed). Runs inside the run's transaction."""
    new = conn.execute(
        "INSERT INTO data_problems (source, key, kind, reason, identity_hash, raw, first_run_id, "
        "last_run_id) SELECT DISTINCT ON (e.source, k) e.source, k, e.kind, e.reason, "
        "e.identity_hash, e.raw, %(run)s, %(run)s FROM (SELECT e.*, " + _KEY + " AS k "
        "FROM run_errors e WHERE e.run_id = %(run)s AND e.source IS NOT NULL "
        "AND e.kind <> 'source') e ORDER BY e.source, k, e.row_no "
        "ON CONFLICT (source, key) WHERE fixed_at IS NULL DO UPDATE SET "
        "last_run_id = EXCLUDED.last_run_id, last_seen_at = clock_timestamp() "
        "RETURNING (xmax = 0)", {"run": run_id}).fetchall()
    fixed = conn.execute(
        "UPDATE data_problems SET fixed_run_id = %s, fixed_at = clock_timestamp() "
        "WHERE fixed_at IS NULL AND source = ANY(%s) AND last_run_id <> %s",
        (run_id, list(sources), run_id)).rowcount
    return sum(1 for (inserted,) in new if inserted), fixed


@dataclass(frozen=True)
class ProblemSummary:
    open: int
    new_since: int
    fixed_since: int
    oldest: tuple[dict[str, Any], ...]  # the oldest open problems first


def summary(conn: psycopg.Connection, since: datetime, oldest: int = 5) -> ProblemSummary:
    """Open problems, and how many were first seen / fixed since `since` (e.g. today's start)."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE fixed_at IS NULL), "
        "count(*) FILTER (WHERE first_seen_at >= %(s)s), "
        "count(*) FILTER (WHERE fixed_at >= %(s)s) FROM data_problems", {"s": since}).fetchone()
    cur = conn.execute(
        "SELECT source, kind, reason, first_seen_at, first_run_id, last_run_id FROM "
        "data_problems WHERE fixed_at IS NULL ORDER BY first_seen_at, id LIMIT %s", (oldest,))
    names = [d.name for d in cur.description or []]
    rows = tuple(dict(zip(names, r, strict=True)) for r in cur.fetchall())
    return ProblemSummary(int(row[0]), int(row[1]), int(row[2]), rows) if row else \
        ProblemSummary(0, 0, 0, ())
