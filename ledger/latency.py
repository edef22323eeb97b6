"""API latency kept in the ledger per minute (table `api_latency`, migration 0006).

Every API process adds a histogram per minute and route; the v1 p95 SLA, `fmw status` and the
dev API read percentiles over any window from their sum, across restarts and processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

#: Upper bounds (ms) of the histogram's buckets; one more bucket holds everything slower.
#: 3,000 ms is a bound, so the "p95 < 3 s" verdict is exact.
BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2000, 3000, 5000, 10_000,
                                 30_000)


def bucket_of(ms: float) -> int:
    for i, bound in enumerate(BUCKETS_MS):
        if ms <= bound:
            return i
    return len(BUCKETS_MS)


@dataclass(frozen=True)
class MinuteRow:
    """What one process served on one route in one minute."""

    minute: datetime
    method: str
    route: str
    requests: int
    errors: int
    total_ms: float
    buckets: tuple[int, ...]


@dataclass(frozen=True)
class RouteLatency:
    method: str
    route: str
    requests: int
    errors: int
    mean_ms: float
    p95_ms: float  # the bucket bound at or above the true p95 (never flatters)


def save(conn: psycopg.Connection, host: str, pid: int, rows: Sequence[MinuteRow]) -> int:
    """Add `rows` (a minute written twice is added up, as after a failed flush retried)."""
    if not rows:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO api_latency (minute, host, pid, method, route, requests, errors, "
            "total_ms, buckets) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (minute, host, pid, method, route) DO UPDATE SET "
            "requests = api_latency.requests + EXCLUDED.requests, "
            "errors = api_latency.errors + EXCLUDED.errors, "
            "total_ms = api_latency.total_ms + EXCLUDED.total_ms, "
            "buckets = (SELECT array_agg(a + b ORDER BY i) FROM unnest(api_latency.buckets, "
            "EXCLUDED.buckets) WITH ORDINALITY AS u(a, b, i))",
            [(r.minute, host, pid, r.method, r.route, r.requests, r.errors, r.total_ms,
              list(r.buckets)) for r in rows])
    return len(rows)


def p95_of(buckets: Sequence[int]) -> float:
    """The bucket bound the 95th percentile falls in (inf when in the overflow bucket)."""
    total = sum(buckets)
    if total == 0:
        return 0.0
    rank, seen = 0.95 * total, 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return BUCKETS_MS[i] if i < len(BUCKETS_MS) else float("inf")
    return float("inf")


def window(conn: psycopg.Connection, since: timedelta,
           route_prefix: str = "") -> list[RouteLatency]:
    """Latency per route over the last `since`, every process added up, slowest p95 first."""
    rows = conn.execute(
        "SELECT method, route, sum(requests), sum(errors), sum(total_ms), "
        "(SELECT array_agg(s ORDER BY i) FROM (SELECT i, sum(b) AS s FROM api_latency l2, "
        "unnest(l2.buckets) WITH ORDINALITY AS u(b, i) WHERE l2.method = l.method "
        "AND l2.route = l.route AND l2.minute >= now() - %(since)s GROUP BY i) t) "
        "FROM api_latency l WHERE minute >= now() - %(since)s AND route LIKE %(prefix)s "
        "GROUP BY method, route", {"since": since, "prefix": route_prefix + "%"}).fetchall()
    out = [RouteLatency(m, r, int(n), int(e), float(t) / int(n) if n else 0.0,
                        p95_of([int(x) for x in (b or [])]))
           for m, r, n, e, t, b in rows]
    return sorted(out, key=lambda x: -x.p95_ms)
