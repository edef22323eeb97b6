"""Turning source values into text: cell values, header names, Python rows and the final table.

Every reader ends in `finish`, so the rules in this module (blank -> null, mapped columns must
exist) hold for every source kind.
"""

from __future__ import annotations

import array
import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fmw.errors import SourceError
from fmw.settings import SourceConfig
from ledger.sources.base import ROW_COLUMN, RowError, SourceTable

#: Floats at or beyond this magnitude are not printed as integers: their digits are not exact.
_EXACT_INT_LIMIT = 1e16
_MAX_LISTED_COLUMNS = 50


def to_text(value: Any) -> str | None:
    """Render one source value as the text stored in the table.

    Args:
        value: a value from a JSON document, a spreadsheet cell, a database row or Arrow.

    Returns:
        The text, or None for a missing value (None, NaN). Lists and dicts become compact JSON.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    return str(value)


def float_text(value: float) -> str | None:
    """Integral floats as integers ("310.0" -> "310"), others as Python's shortest repr; NaN -> None."""
    if math.isnan(value):
        return None
    if value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
        return str(int(value))
    return repr(value)


def json_text(value: Any) -> str:
    """Compact JSON for a nested value (kept in unmapped columns, later stored as attrs)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=to_text)


def kind_of(value: Any) -> str:
    """JSON-style name of a value's type, for messages ("object", "array", "string", ...)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def normalize_headers(raw: Sequence[Any]) -> list[str]:
    """Trim header names, name empty ones ``column_<n>`` and suffix duplicates ``_2``, ``_3``.

    A name that is unique in the source is never renamed, so a mapping to ``a_2`` still finds the
    source's own ``a_2`` even when ``a`` is duplicated. ``__row`` is reserved for the row number.

    Args:
        raw: header cells in source order (any type; None counts as empty).

    Returns:
        One unique, non-empty name per input cell.
    """
    names = [(to_text(h) or "").strip() or f"column_{i}" for i, h in enumerate(raw, 1)]
    taken = set(names) | {ROW_COLUMN}
    kept: set[str] = set()
    out: list[str] = []
    for name in names:
        if name not in kept and name != ROW_COLUMN:
            kept.add(name)
            out.append(name)
            continue
        k = 2
        while f"{name}_{k}" in taken:
            k += 1
        out.append(f"{name}_{k}")
        taken.add(out[-1])
    return out


def row_numbers(first: int, count: int) -> pa.Array:
    """An int64 array ``first, first+1, ...`` built without a Python loop over boxed ints."""
    values = array.array("q", range(first, first + count))
    return pa.Array.from_buffers(pa.int64(), count, [None, pa.py_buffer(values)])


def build_table(names: Sequence[str], rows: Iterable[tuple[int, Sequence[Any]]],
                mapped: Mapping[str, str]) -> tuple[pa.Table, list[RowError]]:
    """Build the text table from Python rows (JSON, spreadsheet, database).

    Args:
        names: normalized column names.
        rows: ``(row number, values)``; values align with `names`, shorter rows are padded.
        mapped: source column -> canonical field, from ``SourceConfig.columns``.

    Returns:
        The table (`ROW_COLUMN` first) and the rows left out because a mapped column held a
        list or dict.
    """
    checks = [(i, name) for i, name in enumerate(names) if name in mapped]
    width = len(names)
    columns: list[list[str | None]] = [[] for _ in names]
    numbers: list[int] = []
    errors: list[RowError] = []
    for number, values in rows:
        bad = next((f"column '{name}': expected a scalar, got {kind_of(values[i])}"
                    for i, name in checks
                    if i < len(values) and isinstance(values[i], dict | list | tuple)), None)
        texts = [to_text(v) for v in values[:width]]
        texts.extend([None] * (width - len(texts)))
        if bad is not None:
            errors.append(RowError(number, bad, dict(zip(names, texts, strict=True))))
            continue
        numbers.append(number)
        for column, text in zip(columns, texts, strict=True):
            column.append(text)
    arrays = [pa.array(numbers, pa.int64())] + [pa.array(c, pa.string()) for c in columns]
    return pa.Table.from_arrays(arrays, names=[ROW_COLUMN, *names]), errors


def blank_to_null(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Null out empty and whitespace-only strings (vectorized)."""
    blank = pc.or_kleene(pc.equal(pc.binary_length(column), 0), pc.utf8_is_space(column))
    if not pc.any(blank).as_py():
        return column
    return pc.if_else(blank, pa.scalar(None, pa.string()), column)


def missing_columns_reason(cfg: SourceConfig, names: Sequence[str]) -> str | None:
    """Explain which mapped source columns are absent, or return None when all are present."""
    present = set(names)
    missing = [(fld, col) for fld, col in cfg.columns if col not in present]
    if not missing:
        return None
    folded = {n.casefold(): n for n in names}
    parts, hints = [], []
    for fld, col in missing:
        parts.append(f"'{col}' (for {fld})")
        guess = folded.get(col.strip().casefold()) or next(
            iter(difflib.get_close_matches(col, names, n=1)), None)
        if guess is not None:
            hints.append(f"did you mean '{guess}' for '{col}'?")
    listed = ", ".join(names[:_MAX_LISTED_COLUMNS]) or "(none)"
    if len(names) > _MAX_LISTED_COLUMNS:
        listed += f", ... ({len(names) - _MAX_LISTED_COLUMNS} more)"
    noun = "mapped column" if len(parts) == 1 else "mapped columns"
    reason = f"{noun} {', '.join(parts)} not found; columns in source: {listed}"
    return "; ".join([reason, *hints])


def check_mapped(cfg: SourceConfig, names: Sequence[str], location: str) -> None:
    """Fail when a column named in ``cfg.columns`` is not among `names`.

    Raises:
        SourceError: listing the missing columns and the columns the source has.
    """
    reason = missing_columns_reason(cfg, names)
    if reason is not None:
        raise SourceError(cfg.name, reason, location=location)


def finish(cfg: SourceConfig, location: str, table: pa.Table,
           errors: Sequence[RowError] = ()) -> SourceTable:
    """Apply the rules every reader shares and wrap the result.

    Args:
        cfg: the source.
        location: file path or redacted URL for messages.
        table: `ROW_COLUMN` (int64) first, then string columns.
        errors: rows left out of `table`.

    Returns:
        The `SourceTable` with blank cells as null.

    Raises:
        SourceError: a mapped column is missing.
    """
    names = table.column_names[1:]
    check_mapped(cfg, names, location)
    columns = [table.column(0)] + [blank_to_null(table.column(i + 1)) for i in range(len(names))]
    out = pa.Table.from_arrays(columns, names=[ROW_COLUMN, *names])
    ordered = tuple(sorted(errors, key=lambda e: e.row))
    return SourceTable(source=cfg.name, location=location, table=out, row_errors=ordered)
