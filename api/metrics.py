"""Per-route request counts and latency percentiles, as JSON and as Prometheus text.

Latency is kept as a bounded reservoir of the most recent samples per route (and method),
so memory stays constant however long the server runs; counts are exact.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.latency import BUCKETS_MS, MinuteRow, bucket_of

RESERVOIR = 4096
log = logging.getLogger(__name__)


@dataclass
class _Route:
    count: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    total_s: float = 0.0
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=RESERVOIR))


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


#: Minutes kept in memory while the ledger cannot take them (a day; then the oldest go).
MAX_PENDING_MINUTES = 24 * 60


class Metrics:
    def __init__(self, clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], _Route] = {}
        self._minutes: dict[tuple[int, str, str], list[Any]] = {}
        self._clock = clock
        self.started = clock()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        minute = int(self._clock() // 60)
        with self._lock:
            r = self._routes.setdefault((method, route), _Route())
            r.count += 1
            key = f"{status // 100}xx"
            r.by_status[key] = r.by_status.get(key, 0) + 1
            r.total_s += seconds
            r.samples.append(seconds)
            m = self._minutes.get((minute, method, route))
            if m is None:
                m = self._minutes[(minute, method, route)] = [
                    0, 0, 0.0, [0] * (len(BUCKETS_MS) + 1)]
            m[0] += 1
            m[1] += status >= 500
            m[2] += seconds * 1000
            m[3][bucket_of(seconds * 1000)] += 1

    def drain(self, *, everything: bool = False) -> list[MinuteRow]:
        """Take the finished minutes (all of them with `everything`) for the ledger."""
        current = int(self._clock() // 60)
        with self._lock:
            keys = [k for k in self._minutes if everything or k[0] < current]
            taken = [(k, self._minutes.pop(k)) for k in sorted(keys)]
        return [MinuteRow(datetime.fromtimestamp(k[0] * 60, UTC), k[1], k[2], v[0], v[1], v[2],
                          tuple(v[3])) for k, v in taken]

    def restore(self, rows: list[MinuteRow]) -> None:
        """Put back minutes the ledger did not take (kept up to a day, newest first)."""
        with self._lock:
            for r in rows:
                key = (int(r.minute.timestamp() // 60), r.method, r.route)
                m = self._minutes.setdefault(key, [0, 0, 0.0, [0] * (len(BUCKETS_MS) + 1)])
                m[0] += r.requests
                m[1] += r.errors
                m[2] += r.total_ms
                m[3] = [a + b for a, b in zip(m[3], r.buckets, strict=True)]
            minutes = sorted({k[0] for k in self._minutes}, reverse=True)
            if len(minutes) > MAX_PENDING_MINUTES:
                oldest_kept = minutes[MAX_PENDING_MINUTES - 1]
                for k in [k for k in self._minutes if k[0] < oldest_kept]:
                    del self._minutes[k]

    def snapshot(self) -> dict[str, Any]:
        """Counts and p50/p95/p99 (milliseconds) per route, sorted by route."""
        with self._lock:
            items = [(k, r.count, dict(r.by_status), r.total_s, sorted(r.samples))
                     for k, r in self._routes.items()]
        routes = []
        for (method, route), count, by_status, total_s, s in sorted(items, key=lambda t: t[0][::-1]):
            routes.append({
                "method": method, "route": route, "count": count, "by_status": by_status,
                "mean_ms": round(1000 * total_s / count, 3) if count else 0.0,
                "p50_ms": round(1000 * percentile(s, 50), 3),
                "p95_ms": round(1000 * percentile(s, 95), 3),
                "p99_ms": round(1000 * percentile(s, 99), 3),
                "window": len(s),
            })
        return {"since": self.started, "uptime_s": round(time.time() - self.started, 3),
                "routes": routes}

    def prometheus(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        snap = self.snapshot()
        lines = [
            "# HELP fmw_http_requests_total HTTP requests by route, method and status class.",
            "# TYPE fmw_http_requests_total counter",
        ]
        for r in snap["routes"]:
            for cls, n in sorted(r["by_status"].items()):
                lines.append(f'fmw_http_requests_total{{{_labels(r)},status="{cls}"}} {n}')
        lines += [
            "# HELP fmw_http_request_duration_seconds Request latency (recent window) by route.",
            "# TYPE fmw_http_request_duration_seconds summary",
        ]
        for r in snap["routes"]:
            for q, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
                lines.append(f'fmw_http_request_duration_seconds{{{_labels(r)},quantile="{q}"}} '
                             f"{r[key] / 1000:.6f}")
            lines.append(f"fmw_http_request_duration_seconds_sum{{{_labels(r)}}} "
                         f"{r['mean_ms'] * r['count'] / 1000:.6f}")
            lines.append(f"fmw_http_request_duration_seconds_count{{{_labels(r)}}} {r['count']}")
        lines += ["# HELP fmw_uptime_seconds Seconds since the API started.",
                  "# TYPE fmw_uptime_seconds gauge", f"fmw_uptime_seconds {snap['uptime_s']}"]
        return "\n".join(lines) + "\n"


def _labels(r: dict[str, Any]) -> str:
    route = str(r["route"]).replace("\\", "\\\\").replace('"', '\\"')
    return f'method="{r["method"]}",route="{route}"'


class LatencyFlusher:
    """Writes finished minutes of `metrics` to the ledger every `interval_s` (and what is left
    at close), so the v1 p95 survives restarts and is seen across processes. While the ledger
    cannot take them, minutes wait in memory (up to a day)."""

    def __init__(self, metrics: Metrics, save: Any, interval_s: float = 15.0) -> None:
        self._metrics = metrics
        self._save = save
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fmw-latency-flush",
                                        daemon=True)

    def start(self) -> LatencyFlusher:
        self._thread.start()
        return self

    def flush(self, *, everything: bool = False) -> int:
        rows = self._metrics.drain(everything=everything)
        if not rows:
            return 0
        try:
            return int(self._save(rows))
        except Exception as exc:  # the ledger is away: keep them for the next try
            self._metrics.restore(rows)
            log.debug("latency minutes not written yet (%d kept): %s", len(rows), exc)
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.flush(everything=True)
