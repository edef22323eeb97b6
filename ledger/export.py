"""The ledger's read API for snapshots: every exported table as a stream of Arrow record batches.

PostgreSQL sends each result with ``COPY … TO STDOUT (FORMAT binary)`` (the ADBC PostgreSQL
driver does that for every query) and the driver decodes it into Arrow in C, so no Python code
touches a row. All tables of one export are read inside one ``REPEATABLE READ READ ONLY``
transaction: a snapshot shows the ledger as of one moment, even while a sync commits (a `twin`
connection, for reading a second table at the same time, imports the same snapshot).

Types arrive as the driver maps them (``timestamptz`` -> ``timestamp[us, tz=UTC]``, ``date`` ->
``date32``, ``text[]`` -> ``list<string>``); ``jsonb`` (an Arrow JSON extension type) and other
extension types become their plain storage type (``string``), and the driver's per-field
PostgreSQL metadata is dropped, so the Parquet files carry plain, portable types.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fmw.errors import DatabaseUnavailable
from fmw.settings import Settings
from ledger.db import database_url

#: Exported tables other than `features`, with the order their rows are written in.
TABLE_ORDER: dict[str, str] = {
    "changes": "id",
    "runs": "id",
    "daily_counts": "day",
    "name_map": 'kind, alias_key COLLATE "C"',
    "mcc_mnc_map": 'mcc COLLATE "C", mnc COLLATE "C", valid_from NULLS FIRST, id',
}
#: Features are sorted by these, in byte order (``COLLATE "C"``): the order Parquet statistics
#: and DuckDB compare strings in, so the min/max of each row group prune filters on them.
FEATURE_KEYS = ("feature_group", "feature_name", "mcc", "mnc")
#: Sorted features are handed out in batches of at most this many rows.
BATCH_ROWS = 65_536
#: Sorts of the smaller tables stay in memory; a per-transaction setting.
EXPORT_WORK_MEM = "64MB"


def byte_order_key(table: pa.Table, columns: tuple[str, ...]) -> pa.ChunkedArray:
    """One binary sort key per row that orders like the tuple of `columns` in byte order.

    Fields are joined with NUL, which PostgreSQL text cannot contain, so a shorter value sorts
    before a longer one it is a prefix of; NULL becomes 0xFF (never in UTF-8) and sorts last.
    """
    parts = [pc.cast(table.column(c), pa.binary()) for c in columns]
    return pc.binary_join_element_wise(*parts, b"\x00", null_handling="replace",
                                       null_replacement=b"\xff")


def plain_type(t: pa.DataType) -> pa.DataType:
    """An extension type's storage type, and list children without field metadata."""
    if isinstance(t, pa.BaseExtensionType):
        return plain_type(t.storage_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        child = t.value_field
        make = pa.list_ if pa.types.is_list(t) else pa.large_list
        return make(pa.field(child.name, plain_type(child.type), child.nullable))
    return t


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with plain types and no field or schema metadata."""
    return pa.schema([pa.field(f.name, plain_type(f.type), f.nullable) for f in schema])


def _plain_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for arr, fld in zip(batch.columns, schema, strict=True):
        if isinstance(arr.type, pa.BaseExtensionType):
            arr = arr.storage
        if not arr.type.equals(fld.type, check_metadata=True):
            arr = arr.view(fld.type)  # same layout, only child field metadata differs
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _plain_reader(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    schema = plain_schema(reader.schema)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:  # a loop over batches of ~16 MB, not over rows
            yield _plain_batch(batch, schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


class LedgerExport:
    """One consistent read of the ledger (see `open_export`).

    Read one stream at a time; for a second stream at the same moment, in another thread,
    open a `twin`.
    """

    def __init__(self, cursor: Any, settings: Settings, snapshot_id: str) -> None:
        self._cur = cursor
        self._settings = settings
        self._schema = settings.schema
        self._window = int(settings.changes_window_days)
        self._snapshot_id = snapshot_id

    def twin(self) -> AbstractContextManager[LedgerExport]:
        """Another connection that sees exactly the same ledger state (an exported snapshot).

        Valid while this export is open.
        """
        return _open(self._settings, self._snapshot_id)

    def _t(self, table: str) -> str:
        return f'"{self._schema}".{table}'

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        self._cur.execute(sql)
        return list(self._cur.fetchall())

    def group_counts(self) -> dict[str, int]:
        """Rows per feature_group, in the order `features()` delivers the groups."""
        rows = self._rows(f"SELECT feature_group, count(*) FROM {self._t('features')} "
                          'GROUP BY feature_group ORDER BY feature_group COLLATE "C"')
        return {str(g): int(n) for g, n in rows}

    def last_run_id(self) -> int | None:
        """The newest run that changed the ledger (succeeded or partial), if any."""
        rows = self._rows(f"SELECT max(id) FROM {self._t('runs')} "
                          "WHERE status IN ('succeeded', 'partial')")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def features(self) -> pa.RecordBatchReader:
        """All features, sorted by (feature_group, feature_name, mcc, mnc) in byte order.

        The rows come unsorted and are sorted in Arrow: for a million wide rows that costs
        half the CPU of PostgreSQL's sort (which spills to disk), and it does not depend on
        the database's collation.
        """
        self._cur.execute(f"SELECT * FROM {self._t('features')}")
        table = _plain_reader(self._cur.fetch_record_batch()).read_all()
        # One take over the whole table: taking slices of indices would concatenate the
        # table's chunks again for every slice.
        ordered = table.take(pc.sort_indices(byte_order_key(table, FEATURE_KEYS)))
        del table
        return pa.RecordBatchReader.from_batches(
            ordered.schema, ordered.to_batches(max_chunksize=BATCH_ROWS))

    def table(self, name: str) -> pa.RecordBatchReader:
        """Another exported table; `changes` only within the last `changes_window_days`.

        Raises:
            ValueError: `name` is not an exported table.
        """
        if name not in TABLE_ORDER:
            raise ValueError(f"not an exported ledger table: {name!r}")
        where = ""
        if name == "changes":
            where = f" WHERE changed_at >= now() - make_interval(days => {self._window})"
        self._cur.execute(f"SELECT * FROM {self._t(name)}{where} ORDER BY {TABLE_ORDER[name]}")
        return _plain_reader(self._cur.fetch_record_batch())


def open_export(settings: Settings) -> AbstractContextManager[LedgerExport]:
    """A read-only, repeatable-read view of the ledger over an ADBC connection.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    return _open(settings, None)


@contextmanager
def _open(settings: Settings, snapshot_id: str | None) -> Iterator[LedgerExport]:
    import adbc_driver_postgresql.dbapi as adbc

    url = database_url(settings)
    try:
        conn = adbc.connect(url, autocommit=True)
    except adbc.Error as exc:
        raise DatabaseUnavailable(f"cannot connect to the ledger database: {exc}") from exc
    try:
        cur = conn.cursor()
        try:
            # Explicit BEGIN on an autocommit connection: the driver's own transaction mode
            # cannot ask for REPEATABLE READ.
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if snapshot_id is None:
                cur.execute("SELECT pg_export_snapshot()")
                snapshot_id = str(cur.fetchall()[0][0])
            else:
                cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
            cur.execute(f"SET LOCAL work_mem = '{EXPORT_WORK_MEM}'")
            cur.execute("SET LOCAL TimeZone = 'UTC'")
            yield LedgerExport(cur, settings, snapshot_id)
            cur.execute("COMMIT")
        finally:
            cur.close()
    finally:
        conn.close()
