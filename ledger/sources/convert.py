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
from ledger.sources.base import DEFAULT_LIMITS, ROW_COLUMN, RowError, SourceLimits, SourceTable

#: Floats at or beyond this magnitude are not printed as integers: their digits are not exact.
_EXACT_INT_LIMIT = 1e16
_MAX_LISTED_COLUMNS = 50
_MAX_LISTED_NAME = 40
_IDENT_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
#: PostgreSQL text and jsonb cannot hold NUL; quarantined cells show it as U+2400 (␀).
NUL, NUL_SHOWN = "\x00", "\u2400"
#: Quarantined cells longer than this are stored as an excerpt (the whole cell is the problem).
_RAW_EXCERPT = 200


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
    Names are staged as PostgreSQL identifiers, which keep only their first 63 bytes: a long name
    whose first 63 bytes repeat an earlier name's counts as a duplicate.

    Args:
        raw: header cells in source order (any type; None counts as empty).

    Returns:
        One unique, non-empty name per input cell.
    """
    names = [(to_text(h) or "").replace(NUL, "").strip() or f"column_{i}"
             for i, h in enumerate(raw, 1)]
    taken = {ident_key(n) for n in names} | {ROW_COLUMN}
    kept: set[str] = set()
    out: list[str] = []
    for name in names:
        key = ident_key(name)
        if key not in kept and key != ROW_COLUMN:
            kept.add(key)
            out.append(name)
            continue
        k = 2
        while ident_key(_suffixed(name, k)) in taken:
            k += 1
        out.append(_suffixed(name, k))
        taken.add(ident_key(out[-1]))
    return out


def ident_key(name: str) -> str:
    """What PostgreSQL keeps of an identifier: its first 63 bytes, cut at a character."""
    return name.encode()[:_IDENT_BYTES].decode("utf-8", "ignore")


def _suffixed(name: str, k: int) -> str:
    suffix = f"_{k}"
    return name.encode()[:_IDENT_BYTES - len(suffix)].decode("utf-8", "ignore") + suffix


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
    if len(missing) == len(cfg.columns) and cfg.path is not None:
        # Nothing matches: this may not be the source's file at all (a wrong path, a system
        # file), so its first line is not echoed into the run's error.
        return (f"none of the mapped columns ({', '.join(repr(c) for _, c in missing)}) is in "
                f"the header row ({len(names)} columns); is this the right file?")
    names = [_short(n) for n in names]
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


def _short(name: str) -> str:
    """A header name for a message: escaped, at most `_MAX_LISTED_NAME` characters."""
    text = name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name
    return text if len(text) <= _MAX_LISTED_NAME else text[:_MAX_LISTED_NAME - 3] + "..."


def check_mapped(cfg: SourceConfig, names: Sequence[str], location: str) -> None:
    """Fail when a column named in ``cfg.columns`` is not among `names`.

    Raises:
        SourceError: listing the missing columns and the columns the source has.
    """
    reason = missing_columns_reason(cfg, names)
    if reason is not None:
        raise SourceError(cfg.name, reason, location=location)


def finish(cfg: SourceConfig, location: str, table: pa.Table,
           errors: Sequence[RowError] = (), limits: SourceLimits = DEFAULT_LIMITS) -> SourceTable:
    """Apply the rules every reader shares and wrap the result.

    Args:
        cfg: the source.
        location: file path or redacted URL for messages.
        table: `ROW_COLUMN` (int64) first, then string columns.
        errors: rows left out of `table`.
        limits: cell and column limits.

    Returns:
        The `SourceTable` with blank cells as null. Rows with a NUL in a mapped identity column
        or a cell above ``limits.max_cell_bytes`` become row errors; NUL is removed from every
        other cell (PostgreSQL text cannot hold it).

    Raises:
        SourceError: a mapped column is missing, or there are more than ``limits.max_columns``.
    """
    names = table.column_names[1:]
    if len(names) > limits.max_columns:
        raise SourceError(cfg.name, f"has {len(names):,} columns, above the limit of "
                          f"{limits.max_columns:,} (source_max_columns)", location=location)
    check_mapped(cfg, names, location)
    columns = [table.column(0)] + [blank_to_null(table.column(i + 1)) for i in range(len(names))]
    out = pa.Table.from_arrays(columns, names=[ROW_COLUMN, *names])
    out, rejected = _reject_bad_cells(cfg, out, limits)
    out = _strip_nul(out)
    ordered = tuple(sorted((_shown(e) for e in (*errors, *rejected)), key=lambda e: e.row))
    return SourceTable(source=cfg.name, location=location, table=out, row_errors=ordered)


def _reject_bad_cells(cfg: SourceConfig, table: pa.Table,
                      limits: SourceLimits) -> tuple[pa.Table, list[RowError]]:
    """Split off rows with a NUL in an identity column or a cell above the size limit."""
    identity = {col: fld for fld, col in cfg.columns if fld in cfg.identity}
    reasons: list[tuple[pa.ChunkedArray, Any]] = []
    for name in table.column_names[1:]:
        column = table.column(name)
        if column.null_count == len(column):
            continue
        size = pc.binary_length(column)
        if pc.max(size).as_py() > limits.max_cell_bytes:
            reasons.append((pc.fill_null(pc.greater(size, limits.max_cell_bytes), False),
                            lambda raw, n=name: (f"cell in column {n!r} is "
                                                 f"{len(raw[n].encode()):,} bytes, above the "
                                                 f"limit of {limits.max_cell_bytes:,} "
                                                 "(source_max_cell_bytes)")))
        if name in identity:
            nul = pc.fill_null(pc.match_substring(column, NUL), False)
            if pc.any(nul).as_py():
                reasons.append((nul, lambda raw, n=name, f=identity[name]: (
                    f"identity field {f} contains a control character (NUL, column {n!r})")))
    if not reasons:
        return table, []
    bad = reasons[0][0]
    for mask, _ in reasons[1:]:
        bad = pc.or_(bad, mask)
    errors = []
    rejected = table.filter(bad)
    masks = [mask.filter(bad).to_pylist() for mask, _ in reasons]
    for i, raw in enumerate(rejected.to_pylist()):
        number = raw.pop(ROW_COLUMN)
        why = next(explain for (_, explain), hits in zip(reasons, masks, strict=True) if hits[i])
        errors.append(RowError(number, why(raw), raw))
    return table.filter(pc.invert(bad)), errors


def _strip_nul(table: pa.Table) -> pa.Table:
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) and pc.any(pc.match_substring(column, NUL)).as_py():
            column = blank_to_null(pc.replace_substring(column, NUL, ""))
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _shown(error: RowError) -> RowError:
    """The row error with cells PostgreSQL can store: NUL shown as ␀, huge cells cut."""
    def cell(value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > _RAW_EXCERPT * 4:
            value = f"{value[:_RAW_EXCERPT]}... ({len(value.encode()):,} bytes)"
        return value.replace(NUL, NUL_SHOWN)
    if not any(v is not None and (NUL in v or len(v) > _RAW_EXCERPT * 4)
               for v in error.raw.values()):
        return error
    return RowError(error.row, error.reason, {k: cell(v) for k, v in error.raw.items()})
