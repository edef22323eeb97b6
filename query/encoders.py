"""Streaming encoders: an Arrow RecordBatchReader in, bytes chunks out, one batch at a time.

Memory stays constant in the number of rows. CSV, JSON and XLSX text is made by DuckDB
(`query.textrows`, `query.xlsxrows`), Parquet by pyarrow. CSV is RFC 4180, optionally with a
UTF-8 BOM so Excel reads Korean text, and optionally with formula injection neutralised per
OWASP: a text cell starting with = + - @ TAB or CR gets a leading apostrophe (CSV and XLSX).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from query import textrows
from query.errors import ExportError
from query.fields import JSON_COLUMNS as JSON_COLUMNS
from query.textrows import BOM as BOM
from query.textrows import encode_csv as encode_csv
from query.xlsxrows import XLSX_MAX_ROWS as XLSX_MAX_ROWS
from query.xlsxrows import Drain
from query.xlsxrows import encode_xlsx as encode_xlsx

ExportFormat = Literal["csv", "json", "ndjson", "parquet", "xlsx"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


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
    drain = Drain()
    writer = pq.ParquetWriter(drain, reader.schema, compression=compression)
    try:
        for batch in reader:
            if batch.num_rows:
                writer.write_batch(batch)
                yield drain.take()
    finally:
        writer.close()
    yield drain.take()


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
