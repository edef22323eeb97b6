"""`read_source`: one entry point that turns any configured source into a `SourceTable`.

File kinds are read here (csv, json, jsonl via `text`; xlsx with openpyxl; parquet with pyarrow);
sql and http live in `remote`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from openpyxl import load_workbook
from openpyxl.styles.numbers import is_datetime

from fmw.errors import SourceError
from fmw.settings import SourceConfig
from ledger.sources.arrowtext import column_to_text, is_nested
from ledger.sources.base import DEFAULT_LIMITS, ROW_COLUMN, RowError, SourceLimits, SourceTable
from ledger.sources.convert import build_table, finish, normalize_headers, row_numbers, to_text
from ledger.sources.remote import read_http, read_sql
from ledger.sources.text import read_csv_bytes, read_json_bytes


def read_source(cfg: SourceConfig, limits: SourceLimits = DEFAULT_LIMITS) -> SourceTable:
    """Read one source into an Arrow table of text.

    Args:
        cfg: the configured source; `kind` selects the reader.
        limits: what a reader accepts (`SourceLimits.from_settings`); rows over a cell limit
            become row errors, files over a file limit fail.

    Returns:
        `ROW_COLUMN` (int64) first, then one ``pa.string()`` column per source column; blank
        cells are null. Rows that could be read but not converted are in `row_errors`.

    Raises:
        SourceError: the source cannot be read, is mis-encoded or malformed, lacks a column
            named in ``cfg.columns``, is over a limit, or its path is a refused link or outside
            ``limits.roots``.
        TransientSourceError: a database or HTTP server could not be reached or timed out.
    """
    reader = _READERS.get(cfg.kind)
    if reader is None:
        raise SourceError(cfg.name, f"unsupported source kind {cfg.kind!r}", location=cfg.location)
    return reader(cfg, limits)


def _file(cfg: SourceConfig, limits: SourceLimits) -> Path:
    """The source's path, checked to be a non-empty regular file the settings allow."""
    path = cfg.path
    if path is None:
        raise SourceError(cfg.name, f"kind {cfg.kind!r} needs a path")
    try:
        if path.is_symlink() and not limits.allow_symlinks:
            raise SourceError(cfg.name, "is a symbolic link; refused unless "
                              "source_allow_symlinks = true", location=cfg.location)
        if limits.roots:
            real = path.resolve()
            if not any(real.is_relative_to(root) for root in limits.roots):
                raise SourceError(cfg.name, f"resolves to {real}, outside the folders in "
                                  "source_roots", location=cfg.location)
        if path.is_dir():
            raise SourceError(cfg.name, "is a directory, not a file", location=cfg.location)
        size = path.stat().st_size
    except FileNotFoundError:
        raise SourceError(cfg.name, "file not found", location=cfg.location) from None
    except OSError as exc:
        raise SourceError(cfg.name, f"cannot read file: {exc.strerror or exc}",
                          location=cfg.location) from None
    if size == 0:
        raise SourceError(cfg.name, "file is empty", location=cfg.location)
    return path


def _bytes(cfg: SourceConfig, limits: SourceLimits) -> bytes:
    path = _file(cfg, limits)
    # O_NOFOLLOW: a link swapped in after the check is refused too (where the OS has it).
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | (
        0 if limits.allow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        with os.fdopen(os.open(path, flags), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise SourceError(cfg.name, f"cannot read file: {exc.strerror or exc}",
                          location=cfg.location) from None


def _read_csv(cfg: SourceConfig, limits: SourceLimits) -> SourceTable:
    return read_csv_bytes(cfg, cfg.location, _bytes(cfg, limits), cfg.encoding, limits)


def _read_json(cfg: SourceConfig, limits: SourceLimits) -> SourceTable:
    return read_json_bytes(cfg, cfg.location, _bytes(cfg, limits), cfg.encoding, "json", limits)


def _read_jsonl(cfg: SourceConfig, limits: SourceLimits) -> SourceTable:
    return read_json_bytes(cfg, cfg.location, _bytes(cfg, limits), cfg.encoding, "jsonl", limits)


# --- xlsx --------------------------------------------------------------------------------------

def _read_xlsx(cfg: SourceConfig, limits: SourceLimits) -> SourceTable:
    """First non-empty row is the header; row numbers are the sheet's; empty rows are skipped."""
    path = _file(cfg, limits)
    _check_unpacked_size(cfg, path, limits)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML, key and value errors alike
        raise SourceError(cfg.name, f"not a readable .xlsx file: {exc}",
                          location=cfg.location) from None
    try:
        sheet = _sheet(cfg, book)
        if hasattr(sheet, "reset_dimensions"):
            sheet.reset_dimensions()  # the stored dimension is often wrong; trust the cells
        try:
            rows = list(_sheet_rows(cfg, sheet, limits))
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(cfg.name, f"not a readable .xlsx file: {exc}",
                              location=cfg.location) from None
    finally:
        book.close()
    if not rows:
        return finish(cfg, cfg.location, pa.table({ROW_COLUMN: pa.array([], pa.int64())}),
                      limits=limits)
    (_, header), body = rows[0], rows[1:]
    width = max(len(values) for _, values in rows)
    names = normalize_headers(list(header) + [None] * (width - len(header)))
    table, errors = build_table(names, body, {col: fld for fld, col in cfg.columns})
    return finish(cfg, cfg.location, table, errors, limits)


def _check_unpacked_size(cfg: SourceConfig, path: Path, limits: SourceLimits) -> None:
    """Refuse a workbook whose members unpack to more than the limit (a zip bomb) before
    openpyxl inflates anything; Python's zip reader never inflates past a declared size."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SourceError(cfg.name, f"not a readable .xlsx file: {exc}",
                          location=cfg.location) from None
    if declared > limits.xlsx_max_unpacked_mb * (1 << 20):
        raise SourceError(cfg.name, f"unpacks to {declared / (1 << 20):,.0f} MB, above the "
                          f"limit of {limits.xlsx_max_unpacked_mb:,g} MB (xlsx_max_unpacked_mb)",
                          location=cfg.location)


def _sheet(cfg: SourceConfig, book: Any) -> Any:
    names = list(book.sheetnames)
    if cfg.sheet is not None and cfg.sheet not in names:
        raise SourceError(cfg.name, f"sheet '{cfg.sheet}' not found; sheets in workbook: "
                          f"{', '.join(names) or '(none)'}", location=cfg.location)
    name = cfg.sheet if cfg.sheet is not None else (names[0] if names else None)
    if name is None:
        raise SourceError(cfg.name, "workbook has no sheets", location=cfg.location)
    sheet = book[name]
    if not hasattr(sheet, "iter_rows"):
        raise SourceError(cfg.name, f"sheet '{name}' is a chart sheet, not a worksheet",
                          location=cfg.location)
    return sheet


def _sheet_rows(cfg: SourceConfig, sheet: Any,
                limits: SourceLimits) -> Iterator[tuple[int, list[Any]]]:
    """Non-empty rows as (sheet row number, values without trailing empty cells).

    Raises:
        SourceError: the sheet has more than ``limits.xlsx_max_rows`` rows or a row is wider
            than ``limits.max_columns`` (checked as rows stream in, before they pile up).
    """
    for number, cells in enumerate(sheet.iter_rows(min_row=1), start=1):
        if number > limits.xlsx_max_rows:
            raise SourceError(cfg.name, f"sheet has more than {limits.xlsx_max_rows:,} rows "
                              "(xlsx_max_rows)", location=cfg.location)
        values = [_cell_value(cell) for cell in cells]
        while values and (values[-1] is None or (to_text(values[-1]) or "").strip() == ""):
            values.pop()
        if len(values) > limits.max_columns:
            raise SourceError(cfg.name, f"row {number} has {len(values):,} columns, above the "
                              f"limit of {limits.max_columns:,} (source_max_columns)",
                              location=cfg.location)
        if values:
            yield number, values


def _cell_value(cell: Any) -> Any:
    value: Any = getattr(cell, "value", None)
    # openpyxl returns a datetime for date-only cells; the number format says it is a date.
    if (isinstance(value, datetime) and value.time() == time()
            and is_datetime(getattr(cell, "number_format", "General")) == "date"):
        return value.date()
    return value


# --- parquet -----------------------------------------------------------------------------------

def _read_parquet(cfg: SourceConfig, limits: SourceLimits) -> SourceTable:
    """Row numbers are 1-based record indexes; nested values in mapped columns are row errors."""
    path = _file(cfg, limits)
    try:
        source = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(cfg.name, f"not a readable Parquet file: {exc}",
                          location=cfg.location) from None
    if source.num_columns > limits.max_columns:
        raise SourceError(cfg.name, f"has {source.num_columns:,} columns, above the limit of "
                          f"{limits.max_columns:,} (source_max_columns)", location=cfg.location)
    names = normalize_headers(source.column_names)
    mapped = {col for _, col in cfg.columns}
    texts = [row_numbers(1, source.num_rows)]
    for name, column in zip(names, source.columns, strict=True):
        try:
            texts.append(column_to_text(column))
        except pa.ArrowException as exc:
            raise SourceError(cfg.name, f"column '{name}' ({column.type}) cannot be read as "
                              f"text: {exc}", location=cfg.location) from None
    table = pa.Table.from_arrays(texts, names=[ROW_COLUMN, *names])
    nested = [(name, source.column(i)) for i, name in enumerate(names)
              if name in mapped and is_nested(source.column(i).type)]
    if not nested:
        return finish(cfg, cfg.location, table, limits=limits)
    errors: list[RowError] = []
    bad = pa.chunked_array([pa.array([False] * source.num_rows, pa.bool_())])
    for name, column in nested:
        hit = pc.and_not(pc.is_valid(column), bad)
        kind = "object" if pa.types.is_struct(column.type) or pa.types.is_map(column.type) \
            else "array"
        for raw in table.filter(hit).to_pylist():
            number = raw.pop(ROW_COLUMN)
            errors.append(RowError(number, f"column '{name}': expected a scalar, got {kind}", raw))
        bad = pc.or_(bad, hit)
    return finish(cfg, cfg.location, table.filter(pc.invert(bad)), errors, limits)


_READERS: dict[str, Callable[[SourceConfig, SourceLimits], SourceTable]] = {
    "csv": _read_csv,
    "json": _read_json,
    "jsonl": _read_jsonl,
    "xlsx": _read_xlsx,
    "parquet": _read_parquet,
    "sql": read_sql,
    "http": read_http,
}
