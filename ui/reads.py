"""What the explorer's pages read, as plain functions of (engine, version, arguments).

No Streamlit here: the pages wrap these in `st.cache_data` keyed by the snapshot version
(`ui.cache`), and the benchmark times them directly. Every call pins `version`, so one page
render never mixes two snapshots even if a new one is published halfway through.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa

from query import Engine, Facets, QuerySpec, Result
from query.errors import UnknownField
from query.results import Export
from query.scope import RowScope

COUNT_FIELDS = ("created", "updated", "deleted", "errors")
ALL_COUNT_FIELDS = ("created", "updated", "deleted", "errors", "runs", "failed_runs")
#: Home's windows: (label, days, include today) - the figures of /api/dev/runs/summary.
WINDOWS: tuple[tuple[str, int, bool], ...] = (
    ("Today", 1, True), ("Yesterday", 1, False), ("7 days", 7, True), ("14 days", 14, True),
    ("30 days", 30, True),
)
TREND_DAYS = 30
#: Age (seconds) past which a left-over export file is removed.
STALE_EXPORT_S = 3600


@dataclass(frozen=True)
class SnapshotFacts:
    version: int
    name: str
    created_at: datetime
    run_id: int | None
    rows: int
    groups: dict[str, int]
    fallback: str | None

    def age_hours(self, now: datetime) -> float:
        return (now - self.created_at).total_seconds() / 3600

    def stale(self, now: datetime, stale_hours: float) -> bool:
        return self.age_hours(now) > stale_hours


def snapshot_facts(engine: Engine, version: int | None = None) -> SnapshotFacts:
    """The current (or a pinned) snapshot's facts.

    Raises:
        NoSnapshot, UnknownVersion, CorruptSnapshot.
    """
    snap = engine.snapshot(version)
    created = datetime.fromisoformat(snap.created_at)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    info = snap.manifest.tables.get("features")
    return SnapshotFacts(snap.version, snap.name, created, snap.manifest.run_id,
                         info.rows if info else 0, snap.groups(),
                         snap.fallback.message if snap.fallback else None)


@dataclass(frozen=True)
class Window:
    """Totals over `days` days ending `last` (inclusive), and the same-length window before."""

    label: str
    days: int
    first: date
    last: date
    totals: dict[str, int]
    previous: dict[str, int]


@dataclass(frozen=True)
class HomeData:
    version: int
    today: date
    windows: tuple[Window, ...]
    trend: pa.Table  # day and `fields` over the last TREND_DAYS days
    last_run: dict[str, Any] | None
    #: The figures it holds (a row scope's Home has no errors: quarantined rows have no scope).
    fields: tuple[str, ...] = COUNT_FIELDS


def home_data(engine: Engine, version: int, today: date) -> HomeData:
    """Home's cards (from the snapshot's daily_counts, as /api/dev/runs/summary counts them),
    the daily trend and the newest run in the snapshot."""
    since = today - timedelta(days=2 * TREND_DAYS + 1)
    spec = QuerySpec(table="daily_counts", filters=(("day__gte", since.isoformat()),),
                     limit=10_000)
    rows = engine.query(spec, version=version, count=False).rows.to_pylist()
    by_day = {r["day"]: r for r in rows}
    runs = engine.query(QuerySpec(table="runs", limit=1), version=version, count=False)
    last_run = runs.rows.to_pylist()[0] if runs.rows.num_rows else None
    return _home(version, today, by_day, ALL_COUNT_FIELDS, COUNT_FIELDS, last_run)


#: What a scoped Home counts, from the changes table's op.
SCOPED_FIELDS = ("created", "updated", "deleted")
_OP_FIELD = {"C": "created", "U": "updated", "D": "deleted"}


def scoped_home_data(engine: Engine, version: int, today: date, tz: str, scope: RowScope
                     ) -> HomeData:
    """Home's cards and trend counted from the changes in `scope` (per day in `tz`):
    daily_counts and runs cover every row and cannot be scoped."""
    since = today - timedelta(days=2 * TREND_DAYS + 1)
    start = datetime.combine(since, datetime.min.time(), tzinfo=ZoneInfo(tz))
    spec = QuerySpec(table="changes", filters=(("changed_at__gte", start.isoformat()),),
                     columns=("changed_at", "op"), scope=scope)
    frame = rows_of(engine, version, spec).to_pandas()
    by_day: dict[date, dict[str, int]] = {}
    if len(frame):
        days = pd.to_datetime(frame["changed_at"], utc=True).dt.tz_convert(tz).dt.date
        for (day, op), n in frame.assign(day=days).groupby(["day", "op"]).size().items():
            field = _OP_FIELD.get(str(op))
            if field:
                by_day.setdefault(day, {})[field] = int(n)
    return _home(version, today, by_day, SCOPED_FIELDS, SCOPED_FIELDS, None)


def _home(version: int, today: date, by_day: Mapping[date, Mapping[str, Any]],
          totals: Sequence[str], fields: tuple[str, ...],
          last_run: dict[str, Any] | None) -> HomeData:
    """The windows and the trend from per-day figures."""
    def total(first: date, last: date) -> dict[str, int]:
        out = dict.fromkeys(totals, 0)
        for day, r in by_day.items():
            if first <= day <= last:
                for k in totals:
                    out[k] += int(r.get(k) or 0)
        return out

    windows = []
    for label, days, with_today in WINDOWS:
        last = today if with_today else today - timedelta(days=1)
        first = last - timedelta(days=days - 1)
        prev_last = first - timedelta(days=1)
        windows.append(Window(label, days, first, last, total(first, last),
                              total(prev_last - timedelta(days=days - 1), prev_last)))
    shown = [today - timedelta(days=i) for i in range(TREND_DAYS - 1, -1, -1)]
    trend = pa.table({"day": pa.array(shown, pa.date32()),
                      **{k: pa.array([int((by_day.get(d) or {}).get(k) or 0) for d in shown],
                                     pa.int64()) for k in fields}})
    return HomeData(version, today, tuple(windows), trend, last_run, fields)


def page(engine: Engine, version: int, spec: QuerySpec) -> Result:
    """One page of `spec` and the total count."""
    return engine.query(spec, version=version)


def facet_counts(engine: Engine, version: int, specs: Sequence[tuple[QuerySpec, Sequence[str]]],
                 top: int = 1000) -> dict[str, list[tuple[Any, int]]]:
    """(value, count) per column; each column counted under its own spec (its filter left out,
    so the counts say what choosing another value would give). Specs shared by several
    columns are counted in one call."""
    out: dict[str, list[tuple[Any, int]]] = {}
    for spec, columns in specs:
        if not columns:
            continue
        facets: Facets = engine.facets(spec, list(columns), top=top, version=version)
        for f in facets.facets:
            out[f.column] = [(v.value, v.count) for v in f.values]
    return out


def schema_names(engine: Engine, version: int, table: str = "features") -> tuple[str, ...]:
    return engine.schema(table, version=version).names


def excel_export(engine: Engine, version: int, spec: QuerySpec, fmt: str, tz: str = "UTC"
                 ) -> Export:
    """Every row of `spec` (no page) encoded as `fmt` ("xlsx" or "csv"), for a person opening
    it in Excel, time stamps as the wall clock of `tz` with the zone in their header.

    XLSX is the one that opens as the data is: text (codes such as MNC ``05``, formula-like
    text, Korean) is stored as text and never evaluated, numbers as numbers, times as dates.
    CSV has a BOM so Excel reads UTF-8, and text starting with = + - @ TAB or CR gets a
    leading ``'`` (OWASP CSV injection): Excel would otherwise run it as a formula. What CSV
    cannot do: Excel (and LibreOffice) opening it turn digit text into numbers (``05`` -> 5),
    whatever the quoting; only a formula (``="05"``) or a changed value would prevent it. The
    API keeps its output raw unless ``neutralise=1``.
    """
    return engine.export(spec, fmt, version=version, bom=(fmt == "csv"),
                         neutralise=(fmt == "csv"), tz=tz)


def export_bytes(engine: Engine, version: int, spec: QuerySpec, fmt: str, tz: str = "UTC"
                 ) -> bytes:
    """`excel_export` as one bytes object (small exports and tests)."""
    return b"".join(excel_export(engine, version, spec, fmt, tz).chunks)


def export_file(engine: Engine, version: int, spec: QuerySpec, fmt: str, folder: Path,
                tz: str = "UTC") -> Path:
    """`excel_export` written chunk by chunk to a new file in `folder` (memory stays that of
    one chunk); the caller removes it. Files a stopped process left there an hour ago or
    earlier are removed first."""
    folder.mkdir(parents=True, exist_ok=True)
    stale = time.time() - STALE_EXPORT_S
    for old in folder.glob("export-*"):
        with contextlib.suppress(OSError):  # another process's, or in use (Windows)
            if old.stat().st_mtime < stale:
                old.unlink()
    fd, name = tempfile.mkstemp(prefix="export-", suffix=f".{fmt}", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in excel_export(engine, version, spec, fmt, tz).chunks:
                fh.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


#: Characters Windows does not allow in a file name, and control characters.
_UNSAFE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
#: A file name's length at most (characters): Windows allows 255, but the folder counts
#: toward its 260-character paths.
MAX_NAME = 120


def export_name(table: str, version: int, ext: str, *, group: str | None = None,
                filters: Sequence[tuple[str, str]] = ()) -> str:
    """A download's file name that says what is in it, safe on Windows, e.g.
    ``features-volte-country=Germany-status=enabled-v000002.xlsx``.

    Filters are sorted by name (values of one name joined with ``,``); characters Windows
    refuses become ``_``; a name longer than `MAX_NAME` is cut and ends with a short hash of
    the whole, so two different views never share a name. Korean stays as it is.
    """
    values: dict[str, list[str]] = {}
    for key, value in filters:
        values.setdefault(key, []).append(value)
    parts = [table, *([group] if group else []),
             *(f"{k}={','.join(v)}" for k, v in sorted(values.items()))]
    middle = _UNSAFE_NAME.sub("_", "-".join(parts)).strip(" .")
    tail = f"-v{version:06d}.{ext}"
    if len(middle) + len(tail) > MAX_NAME:
        digest = hashlib.sha256(middle.encode()).hexdigest()[:8]
        middle = middle[:MAX_NAME - len(tail) - 9].rstrip(" .") + "~" + digest
    return middle + tail


def rows_of(engine: Engine, version: int, spec: QuerySpec) -> pa.Table:
    """All rows of a (small, limited) spec as one Arrow table."""
    with engine.stream(spec, version=version) as stream:
        return stream.reader.read_all()


def has_column(engine: Engine, version: int, table: str, column: str) -> bool:
    try:
        engine.schema(table, version=version).column(column)
    except UnknownField:
        return False
    return True
