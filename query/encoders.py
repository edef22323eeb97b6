"""Streaming encoders: an Arrow RecordBatchReader in, bytes chunks out, one batch at a time.

Memory stays constant in the number of rows (XLSX: openpyxl's write-only mode keeps rows in a
temporary file until the zip is written). CSV (`query.textrows`) is RFC 4180, optionally with a
UTF-8 BOM so Excel reads Korean text, and optionally with formula injection neutralised per
OWASP: a text cell starting with = + - @ TAB or CR gets a leading apostrophe (CSV and XLSX).
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from query import textrows
from query.errors import ExportError
from query.fields import JSON_COLUMNS as JSON_COLUMNS
from query.textrows import BOM as BOM
from query.textrows import encode_csv as encode_csv

ExportFormat = Literal["csv", "json", "ndjson", "parquet", "xlsx"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMULA_START = r"^[=+\-@\t\r]"
XLSX_MAX_ROWS = 1_048_576  # including the header row
XLSX_MAX_CELL = 32_767
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CHUNK = 1 << 20


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


class _Drain(io.RawIOBase):
    """A write-only file that hands over what was written since the last `take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def encode_ndjson(reader: pa.RecordBatchReader, *, json_columns: Collection[str] = ()
                  ) -> Iterator[bytes]:
    """One JSON object per line (LF), UTF-8 (see `query.textrows` for the value formats)."""
    return textrows.encode_json(reader, json_columns=json_columns, array=False)


def encode_json(reader: pa.RecordBatchReader, *, json_columns: Collection[str] = ()
                ) -> Iterator[bytes]:
    """One JSON array of objects, UTF-8."""
    return textrows.encode_json(reader, json_columns=json_columns, array=True)


def encode_parquet(reader: pa.RecordBatchReader, *, compression: str = "zstd"
                   ) -> Iterator[bytes]:
    """A Parquet file, one row group per batch, flushed as each is written."""
    drain = _Drain()
    writer = pq.ParquetWriter(drain, reader.schema, compression=compression)
    try:
        for batch in reader:
            if batch.num_rows:
                writer.write_batch(batch)
                yield drain.take()
    finally:
        writer.close()
    yield drain.take()


def _xlsx_value(v: Any, neutralise_formulas: bool) -> tuple[Any, bool]:
    """(cell value, force text type) for openpyxl."""
    if isinstance(v, datetime):
        return (v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v), False
    if isinstance(v, list | dict):
        v = json.dumps(v, ensure_ascii=False, default=_json_default)
    if isinstance(v, str):
        v = _XLSX_ILLEGAL.sub("", v)[:XLSX_MAX_CELL]
        if neutralise_formulas and re.match(FORMULA_START, v):
            v = "'" + v
        # openpyxl would store a text starting with "=" as a formula: force text
        return v, v.startswith("=")
    return v, False


def encode_xlsx(reader: pa.RecordBatchReader, *, neutralise: bool = False,
                sheet: str = "data") -> Iterator[bytes]:
    """An Excel workbook with one sheet (header row + data); text never becomes a formula.

    Raises:
        ExportError: more rows than a worksheet holds (check `total` before exporting).
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append(list(reader.schema.names))
    n = 1
    try:
        for batch in reader:
            n += batch.num_rows
            if n > XLSX_MAX_ROWS:
                raise ExportError("xlsx", f"more than {XLSX_MAX_ROWS - 1} rows; filter "
                                          "further or choose csv or parquet")
            for row in batch.to_pylist():
                out = []
                for v in row.values():
                    value, force_text = _xlsx_value(v, neutralise)
                    if force_text:
                        cell = WriteOnlyCell(ws, value=value)
                        cell.data_type = "s"
                        out.append(cell)
                    else:
                        out.append(value)
                ws.append(out)
    except BaseException:
        ws.close()  # finish openpyxl's row writer (its temp file goes at exit)
        raise
    with tempfile.SpooledTemporaryFile(max_size=8 * _CHUNK) as fh:
        wb.save(fh)
        fh.seek(0)
        while chunk := fh.read(_CHUNK):
            yield chunk


def encode(reader: pa.RecordBatchReader, fmt: str, *, bom: bool = False,
           neutralise: bool = False, json_columns: Collection[str] = ()) -> Iterator[bytes]:
    """Dispatch to the encoder for `fmt` (one of `FORMATS`).

    Raises:
        ExportError: an unknown format.
    """
    encoders: dict[str, Callable[[], Iterator[bytes]]] = {
        "csv": lambda: encode_csv(reader, bom=bom, neutralise=neutralise),
        "json": lambda: encode_json(reader, json_columns=json_columns),
        "ndjson": lambda: encode_ndjson(reader, json_columns=json_columns),
        "parquet": lambda: encode_parquet(reader),
        "xlsx": lambda: encode_xlsx(reader, neutralise=neutralise),
    }
    if fmt not in encoders:
        raise ExportError(fmt, f"unknown format; valid: {', '.join(FORMATS)}")
    return encoders[fmt]()
