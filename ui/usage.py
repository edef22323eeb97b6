"""Page views, buffered in memory and written to the ledger in the background.

The explorer must keep working with PostgreSQL down, so a view is only counted in memory; a
daemon thread adds the counts to the ledger every `flush_s` seconds (and at exit) through
`ledger.explorer`, keeping them when the database cannot be reached. The same thread reads the
weekly-active-users summary and the open SLA violations, so Home shows them without waiting
for the database.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fmw.settings import Settings
from ledger.explorer import (
    DayUsage,
    DownloadAudit,
    OpsFigures,
    SlaViolation,
    UsageSummary,
    ViewCount,
)

log = logging.getLogger(__name__)

MAX_BUFFERED_KEYS = 100_000
LOCAL_DAYS = 28


@dataclass(frozen=True)
class LedgerView:
    """The last figures read from the ledger (None: never read), and the last error."""

    usage: UsageSummary | None = None
    sla: tuple[SlaViolation, ...] | None = None
    read_at: datetime | None = None
    error: str | None = None
    pending: int = 0  # views counted here and not yet written
    ops: OpsFigures | None = None  # bad rows, incidents, v1 p95 (None: never read)


def _ledger_ready(settings: Settings) -> bool:
    """An embedded server is used only when it already runs (the explorer never starts one)."""
    if not settings.embedded:
        return True
    return (settings.pg_dir / "postmaster.pid").is_file()


class LedgerIO:
    """The explorer's ledger round trips (replaceable in tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def write(self, counts: list[ViewCount]) -> None:
        from ledger.db import connect
        from ledger.explorer import record_page_views
        if not _ledger_ready(self.settings):
            raise ConnectionError("the embedded PostgreSQL is not running")
        with connect(self.settings, autocommit=True, application_name="fmw-ui") as conn:
            record_page_views(conn, counts)

    def read(self, today: date) -> tuple[UsageSummary, list[SlaViolation]]:
        from ledger.db import connect
        from ledger.explorer import open_sla_violations, usage_summary
        if not _ledger_ready(self.settings):
            raise ConnectionError("the embedded PostgreSQL is not running")
        with connect(self.settings, autocommit=True, application_name="fmw-ui") as conn:
            return usage_summary(conn, today), open_sla_violations(conn)

    def audit_download(self, download: DownloadAudit) -> None:
        """Write the audit row of a scoped user's download (`ui.server`, before it streams).

        Raises:
            ConnectionError, DatabaseUnavailable or a database error: not written.
        """
        from ledger.db import connect
        from ledger.explorer import audit_download
        if not _ledger_ready(self.settings):
            raise ConnectionError("the embedded PostgreSQL is not running")
        with connect(self.settings, autocommit=True, application_name="fmw-ui") as conn:
            audit_download(conn, download)

    def read_ops(self, today_start: datetime) -> OpsFigures:
        from ledger.db import connect
        from ledger.explorer import ops_figures
        if not _ledger_ready(self.settings):
            raise ConnectionError("the embedded PostgreSQL is not running")
        with connect(self.settings, autocommit=True, application_name="fmw-ui") as conn:
            return ops_figures(conn, today_start, self.settings.timezone)


class UsageRecorder:
    """Counts page views per (day, client, page); see the module docstring.

    Args:
        io: writes counts and reads summaries (`LedgerIO` in production).
        timezone: the FMW time zone that days are counted in.
        flush_s: seconds between background flushes; 0 disables the thread (tests call
            `flush` themselves).
    """

    def __init__(self, io: Any, timezone: str, flush_s: float = 60.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.io = io
        self.zone = ZoneInfo(timezone)
        self.flush_s = flush_s
        self.clock = clock
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._buffer: Counter[tuple[date, str, str]] = Counter()
        self._local: dict[date, tuple[int, set[str]]] = {}
        self._view = LedgerView()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def today(self) -> date:
        return self.clock().astimezone(self.zone).date()

    def record(self, client: str, page: str) -> None:
        """Count one view (memory only; never blocks on the database)."""
        day = self.today()
        client = (client or "unknown").strip() or "unknown"
        with self._lock:
            key = (day, client, page)
            if key in self._buffer or len(self._buffer) < MAX_BUFFERED_KEYS:
                self._buffer[key] += 1
            views, clients = self._local.get(day, (0, set()))
            clients.add(client)
            self._local[day] = (views + 1, clients)
            for old in [d for d in self._local if d < day - timedelta(days=LOCAL_DAYS)]:
                del self._local[old]

    def flush(self) -> bool:
        """Write the buffered counts; on failure they stay buffered. True when written."""
        with self._io_lock:
            with self._lock:
                taken = dict(self._buffer)
                self._buffer.clear()
            if not taken:
                return True
            counts = [ViewCount(d, c, p, n) for (d, c, p), n in sorted(taken.items())]
            try:
                self.io.write(counts)
            except Exception as exc:  # noqa: BLE001 - the database may be down: keep them
                with self._lock:
                    for key, n in taken.items():
                        self._buffer[key] += n
                self._set_error(f"page views not written yet: {exc}")
                log.info("page views kept in memory: %s", exc)
                return False
            return True

    def refresh(self) -> bool:
        """Read WAU and open SLA violations from the ledger; True when read."""
        with self._io_lock:
            try:
                usage, sla = self.io.read(self.today())
                read_ops = getattr(self.io, "read_ops", None)
                start = datetime.combine(self.today(), time(0), tzinfo=self.zone)
                ops = read_ops(start) if read_ops is not None else None
            except Exception as exc:  # noqa: BLE001 - keep the last figures
                self._set_error(f"ledger not reachable: {exc}")
                return False
            self._view = LedgerView(usage, tuple(sla), self.clock(), None, self.pending, ops)
            return True

    def _set_error(self, error: str) -> None:
        v = self._view
        self._view = LedgerView(v.usage, v.sla, v.read_at, error.splitlines()[0], self.pending,
                                v.ops)

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(self._buffer.values())

    @property
    def view(self) -> LedgerView:
        v = self._view
        return LedgerView(v.usage, v.sla, v.read_at, v.error, self.pending, v.ops)

    def local_summary(self) -> UsageSummary:
        """Views and clients counted by this process since it started (PostgreSQL down)."""
        today = self.today()
        with self._lock:
            local = {d: (n, set(c)) for d, (n, c) in self._local.items()}
        days = [today - timedelta(days=i) for i in range(LOCAL_DAYS - 1, -1, -1)]
        per = tuple(DayUsage(d, local[d][0], len(local[d][1])) if d in local
                    else DayUsage(d, 0, 0) for d in days)

        def distinct(first: date, last: date) -> int:
            return len(set().union(*(c for d, (_, c) in local.items() if first <= d <= last)))

        return UsageSummary(today, per, distinct(today - timedelta(days=6), today),
                            distinct(today - timedelta(days=13), today - timedelta(days=7)),
                            distinct(today - timedelta(days=LOCAL_DAYS - 1), today))

    # -- background thread --------------------------------------------------------------------

    def start(self) -> UsageRecorder:
        if self.flush_s <= 0 or self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._loop, name="fmw-ui-usage", daemon=True)
        self._thread.start()
        atexit.register(self.stop)
        return self

    def _loop(self) -> None:
        self.refresh()
        while not self._stop.wait(self.flush_s):
            self.flush()
            self.refresh()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and write what is buffered (best effort)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()
