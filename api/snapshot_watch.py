"""The API's watch over the snapshot it serves: a periodic re-check and alerts.

A published version is verified once, at its first use; damage done later (a disk, a person,
a virus scanner changing bytes in place) is found by a failing read (see `query.snapshot`) or,
when no read fails (a flipped byte inside a value), by this watch: every `api_snapshot_check_s`
it checks the version readers get again, reading every byte, on a daemon thread. Whatever
changes what readers get (a fallback to an older version, no usable version, back to normal)
is logged at once, kept for `/api/dev/health`, and sent to `sla_webhook_url` from this thread,
so a request never waits for a webhook.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from query.snapshot import Resolver, SnapshotEvent

log = logging.getLogger(__name__)

Notify = Callable[[dict[str, Any]], None]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class SnapshotWatch:
    """Re-checks the served version every `interval_s` (0: only on failing reads) and alerts.

    Args:
        notify: sends one alert body (the webhook's `post_json`); None when none is configured.
        schema: the ledger schema, named in alerts like the other FMW alerts.
    """

    def __init__(self, resolver: Resolver, *, interval_s: float, notify: Notify | None = None,
                 schema: str = "", keep: int = 20) -> None:
        self.resolver = resolver
        self.interval_s = interval_s
        self.notify = notify
        self.schema = schema
        self._events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._outbox: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_check: dict[str, Any] | None = None
        resolver.listener = self.on_event

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fmw-snapshot-watch",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (a check in progress finishes first) and send what is queued."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def on_event(self, event: SnapshotEvent) -> None:
        """The resolver's listener (called under its lock: record, log, wake the thread)."""
        record = {"at": _iso(time.time()), "kind": event.kind,
                  "version": event.name,
                  "detail": event.detail,
                  "alert": "pending" if self.notify is not None else "no webhook configured"}
        if event.kind == "normal":
            log.warning("snapshot: %s", event.detail)
        else:
            log.error("snapshot %s: %s", event.kind, event.detail)
        with self._lock:
            self._events.append(record)
            if self.notify is not None:
                self._outbox.append(record)
        self._wake.set()

    def check(self) -> dict[str, Any]:
        """One re-check now (what the thread runs every `interval_s`)."""
        started, t0 = time.time(), time.perf_counter()
        try:
            found = self.resolver.reverify()
            result: dict[str, Any] = {
                "at": _iso(started), "seconds": round(time.perf_counter() - t0, 3),
                "versions": {f"v{v:06d}": list(p) for v, p in found.items()}}
        except Exception as exc:  # the watch must outlive any surprise; health shows it
            log.exception("snapshot check failed")
            result = {"at": _iso(started), "seconds": round(time.perf_counter() - t0, 3),
                      "error": f"{type(exc).__name__}: {exc}"}
        self.last_check = result
        return result

    def state(self) -> dict[str, Any]:
        """For /api/dev/health."""
        with self._lock:
            events = [dict(e) for e in self._events]
        return {"check_interval_s": self.interval_s, "last_check": self.last_check,
                "events": events}

    def _run(self) -> None:
        due = time.monotonic() + self.interval_s
        while not self._stop.is_set():
            wait = max(0.0, due - time.monotonic()) if self.interval_s > 0 else None
            self._wake.wait(wait)
            self._wake.clear()
            self._send_queued()
            if self._stop.is_set():
                break
            if self.interval_s > 0 and time.monotonic() >= due:
                self.check()
                due = time.monotonic() + self.interval_s
                self._send_queued()

    def _send_queued(self) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    return
                record = self._outbox.popleft()
            assert self.notify is not None
            host = socket.gethostname()
            where = f"[{host}, schema {self.schema}]" if self.schema else f"[{host}]"
            body = {"text": f"FMW snapshot {record['kind']}: {record['detail']} {where}",
                    "event": f"snapshot_{record['kind']}", "version": record["version"],
                    "detail": record["detail"], "host": host, "schema": self.schema}
            try:
                self.notify(body)
                outcome = "sent"
            except Exception as exc:  # recorded for health; the log has it too
                log.error("could not send the snapshot %s alert: %s", record["kind"], exc)
                outcome = f"not sent: {exc}"
            with self._lock:
                record["alert"] = outcome
