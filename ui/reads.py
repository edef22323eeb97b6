"""What the explorer's pages read, as plain functions of (engine, version, arguments).

No Streamlit here: the pages wrap these in `st.cache_data` keyed by the snapshot version
(`ui.cache`), and the benchmark times them directly. Every call pins `version`, so one page
render never mixes two snapshots even if a new one is published halfway through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from query import Engine, Facets, QuerySpec, Result
from query.errors import UnknownField

COUNT_FIELDS = ("created", "updated", "deleted", "errors")
ALL_COUNT_FIELDS = ("created", "updated", "deleted", "errors", "runs", "failed_runs")
#: Home's windows: (label, days, include today) - the figures of /api/dev/runs/summary.
WINDOWS: tuple[tuple[str, int, bool], ...] = (
    ("Today", 1, True), ("Yesterday", 1, False), ("7 days", 7, True), ("14 days", 14, True),
    ("30 days", 30, True),
)
TREND_DAYS = 30


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
    trend: pa.Table  # day, created, updated, deleted, errors over the last TREND_DAYS days
    last_run: dict[str, Any] | None


def home_data(engine: Engine, version: int, today: date) -> HomeData:
    """Home's cards (from the snapshot's daily_counts, as /api/dev/runs/summary counts them),
    the daily trend and the newest run in the snapshot."""
    since = today - timedelta(days=2 * TREND_DAYS + 1)
    spec = QuerySpec(table="daily_counts", filters=(("day__gte", since.isoformat()),),
                     limit=10_000)
    rows = engine.query(spec, version=version, count=False).rows.to_pylist()
    by_day = {r["day"]: r for r in rows}

    def total(first: date, last: date) -> dict[str, int]:
        out = dict.fromkeys(ALL_COUNT_FIELDS, 0)
        for day, r in by_day.items():
            if first <= day <= last:
                for k in ALL_COUNT_FIELDS:
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
                                     pa.int64()) for k in COUNT_FIELDS}})
    runs = engine.query(QuerySpec(table="runs", limit=1), version=version, count=False)
    last_run = runs.rows.to_pylist()[0] if runs.rows.num_rows else None
    return HomeData(version, today, tuple(windows), trend, last_run)


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


def export_bytes(engine: Engine, version: int, spec: QuerySpec, fmt: str) -> bytes:
    """Every row of `spec` (no page) encoded as `fmt`, for a person opening it in Excel.

    CSV has a BOM so Excel reads UTF-8, and text starting with = + - @ TAB or CR gets a leading
    ``'`` (OWASP CSV injection): Excel would otherwise run it as a formula. XLSX keeps the text
    unchanged, as it stores every text as an inline string, which Excel never evaluates (an
    apostrophe there would show). The API keeps its output raw unless ``neutralise=1``.
    """
    export = engine.export(spec, fmt, version=version, bom=(fmt == "csv"),
                           neutralise=(fmt == "csv"))
    return b"".join(export.chunks)


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
