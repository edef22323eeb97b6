"""One clock for the explorer: every time is shown in the configured `timezone`, and labelled.

The snapshot stores instants (UTC); a page converts them here for display only, so filters and
exports keep their meaning. Pages put `caption(tz)` near a table of times, or give a grid
`column_config(table, tz)`, whose headers then carry the zone's offset (``changed at (+09:00)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import streamlit as st

#: The grid's format for a time (moment.js tokens), to the minute.
GRID_FORMAT = "YYYY-MM-DD HH:mm"
TEXT_FORMAT = "%Y-%m-%d %H:%M"


@lru_cache(maxsize=16)
def zone(tz: str) -> ZoneInfo:
    """The zone named `tz` (an IANA name such as ``Asia/Seoul``; settings checked it)."""
    return ZoneInfo(tz or "UTC")


def offset(tz: str, at: datetime | None = None) -> str:
    """The zone's offset from UTC at `at` (now by default), as ``UTC+09:00``."""
    moment = (at or datetime.now(UTC)).astimezone(zone(tz))
    delta = moment.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def caption(tz: str, at: datetime | None = None) -> str:
    """The label for a page's times: ``Times in Asia/Seoul (UTC+09:00)``."""
    off = offset(tz, at)
    return "Times in UTC" if tz in ("UTC", "Etc/UTC") and off == "UTC+00:00" else \
        f"Times in {tz} ({off})"


def header(name: str, tz: str, at: datetime | None = None) -> str:
    """A grid column's title with the zone: ``changed at (UTC+09:00)``."""
    return f"{name} ({offset(tz, at)})"


def local(value: datetime | None, tz: str) -> datetime | None:
    """`value` in the zone (a naive value is taken as UTC, as the snapshot stores it)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone(tz))


def fmt(value: datetime | str | None, tz: str, empty: str = "–") -> str:
    """A time as ``2026-12-07 20:45`` in the zone (ISO text accepted, e.g. from the API)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return empty
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    moment = local(value, tz)
    return empty if moment is None else moment.strftime(TEXT_FORMAT)


def day_start(day: date, tz: str) -> datetime:
    """The first instant of `day` in the zone (for a changed-between filter on whole days)."""
    return datetime.combine(day, time(), tzinfo=zone(tz))


def today(tz: str) -> date:
    return datetime.now(zone(tz)).date()


def to_zone(table: pa.Table, tz: str) -> pa.Table:
    """`table` with every timestamp column as an instant in the zone (values unchanged, only
    the zone the grid shows them in); naive timestamps are taken as UTC."""
    cols = []
    for col in table.columns:
        t = col.type
        if pa.types.is_timestamp(t):
            if t.tz is None:
                col = col.cast(pa.timestamp(t.unit, tz="UTC"))
            col = col.cast(pa.timestamp(t.unit, tz=tz))
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def timestamp_names(table: pa.Table | pa.Schema) -> list[str]:
    schema = table.schema if isinstance(table, pa.Table) else table
    return [f.name for f in schema if pa.types.is_timestamp(f.type)]


def column_config(columns: pa.Table | pa.Schema | Iterable[str], tz: str,
                  labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`st.dataframe` column settings that show these time columns in the zone, to the
    minute, with the zone's offset in their titles.

    Args:
        columns: a table or schema (its timestamp columns are taken) or column names.
        tz: the configured time zone.
        labels: a title per column (default: the column's name).
    """
    names = (timestamp_names(columns) if isinstance(columns, pa.Table | pa.Schema)
             else list(columns))
    titles = labels or {}
    return {n: st.column_config.DatetimeColumn(header(titles.get(n, n), tz),
                                               format=GRID_FORMAT, timezone=tz)
            for n in names}
