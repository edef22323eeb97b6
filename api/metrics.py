"""Per-route request counts and latency percentiles, as JSON and as Prometheus text.

Latency is kept as a bounded reservoir of the most recent samples per route (and method),
so memory stays constant however long the server runs; counts are exact.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RESERVOIR = 4096


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


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], _Route] = {}
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            r = self._routes.setdefault((method, route), _Route())
            r.count += 1
            key = f"{status // 100}xx"
            r.by_status[key] = r.by_status.get(key, 0) + 1
            r.total_s += seconds
            r.samples.append(seconds)

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
