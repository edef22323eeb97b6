"""Bulk staging: an Arrow table of strings goes into a temporary table with one COPY.

pyarrow writes the CSV in C++ batch by batch and psycopg streams it to the server, so no
Python loop touches individual rows and memory stays at one batch.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ledger.identity import TRIM_CHARS
from ledger.sources.base import ROW_COLUMN

BATCH_ROWS = 100_000


def quote_ident(name: str) -> str:
    """Quote an identifier for PostgreSQL (any text is a valid quoted identifier but NUL)."""
    return '"' + name.replace("\x00", "").replace('"', '""') + '"'


def clean_strings(table: pa.Table) -> pa.Table:
    """NFC-normalise and trim every text column; empty text becomes null (as `identity.clean`).

    Done in Arrow's multi-threaded kernels, not per row in SQL or Python.
    """
    null = pa.scalar(None, pa.string())
    cols = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if name != ROW_COLUMN and pa.types.is_string(col.type):
            col = pc.utf8_trim(pc.utf8_normalize(col, "NFC"), characters=TRIM_CHARS)
            col = pc.if_else(pc.equal(col, ""), null, col)
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def create_raw_table(conn: psycopg.Connection, table_name: str, columns: list[str]) -> None:
    """Create a temporary staging table: ``__row bigint`` then one text column per name."""
    cols = ", ".join(f"{quote_ident(c)} text" for c in columns)
    sep = ", " if cols else ""
    conn.execute(
        f"CREATE TEMP TABLE {quote_ident(table_name)} ({quote_ident(ROW_COLUMN)} bigint{sep}{cols}) "
        "ON COMMIT DROP"
    )


def copy_table(conn: psycopg.Connection, table_name: str, table: pa.Table,
               on_rows: Callable[[int], None] | None = None) -> int:
    """COPY `table` (ROW_COLUMN first, then string columns) into `table_name`.

    Returns:
        The number of rows copied.
    """
    if table.num_rows == 0:
        return 0
    names = table.column_names
    cols = ", ".join(quote_ident(c) for c in names)
    opts = pacsv.WriteOptions(include_header=False, batch_size=BATCH_ROWS)
    copied = 0
    sql = f"COPY {quote_ident(table_name)} ({cols}) FROM STDIN (FORMAT csv)"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            buf = io.BytesIO()
            pacsv.write_csv(batch, buf, write_options=opts)
            copy.write(buf.getbuffer())
            copied += batch.num_rows
            if on_rows:
                on_rows(batch.num_rows)
    return copied
