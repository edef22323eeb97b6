"""For analysts: read-only SQL over a version's views, and a DuckDB catalog file for DBeaver.

`run_sql` accepts exactly one statement that DuckDB parses as a SELECT (which covers WITH,
DESCRIBE, SHOW, SUMMARIZE, VALUES and FROM-first queries), caps the rows and the bytes and
interrupts the query from a timer thread after the time limit. The result is read as small
Arrow record batches and reading stops at the byte cap, so a query cannot make this process
hold more than the cap (15 rows of 100 MB each took the explorer's process to 1.8 GB when
the whole result was read first). DuckDB still builds one vector of rows (up to 2,048) of the
result in its own memory, strings included, which its `memory_limit` does not count. The engine's DuckDB cannot touch files outside
the snapshots folder nor change its configuration, whatever the statement says.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from query.errors import BadValue, QueryTimeout, SqlRejected
from query.results import SqlResult
from query.snapshot import Snapshot

MAX_SQL_ROWS = 1_000_000
MAX_TIMEOUT_S = 600.0
DEFAULT_SQL_MAX_BYTES = 64 * 1024 * 1024
MIN_SQL_BYTES, MAX_SQL_BYTES = 64 * 1024, 1024 * 1024 * 1024
#: Rows per Arrow batch read from DuckDB: small, so the byte cap is checked often.
SQL_BATCH_ROWS = 128


def check_statement(con: duckdb.DuckDBPyConnection, text: str) -> str:
    """The single read-only statement in `text`.

    Raises:
        SqlRejected: a parse error, no statement, several, or anything but a query.
    """
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise SqlRejected(_first_line(exc)) from None
    if len(statements) != 1:
        raise SqlRejected(f"expected exactly one statement, got {len(statements)}")
    st = statements[0]
    if st.type != duckdb.StatementType.SELECT:
        raise SqlRejected(f"only SELECT, WITH, DESCRIBE, SHOW and SUMMARIZE are allowed, "
                          f"not {st.type.name}")
    return str(st.query)


def check_scoped(con: duckdb.DuckDBPyConnection, query: str, tables: frozenset[str]) -> None:
    """A scoped user's statement may read only `tables` (views already restricted to the
    scope) and its own CTEs: no table functions (read_parquet, glob, query_table, ...), no
    file names, no other schema or catalog (the version's unrestricted views).

    Raises:
        SqlRejected: naming what is not allowed.
    """
    row = con.execute("SELECT json_serialize_sql($1)", [query]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise SqlRejected("a scoped user may run SELECT statements only (not DESCRIBE, "
                          "SHOW or SUMMARIZE)")
    ctes: set[str] = set()
    refs: list[dict[str, Any]] = []
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind == "SHOW_REF":
                raise SqlRejected("a scoped user may run SELECT statements only (not "
                                  "DESCRIBE, SHOW or SUMMARIZE)")
            if kind == "TABLE_FUNCTION":
                name = (node.get("function") or {}).get("function_name", "a table function")
                raise SqlRejected(f"{name}() is not available to a scoped user; read the "
                                  f"views {', '.join(sorted(tables))}")
            if kind == "BASE_TABLE":
                refs.append(node)
            cte_map = node.get("cte_map")
            if isinstance(cte_map, dict):
                ctes.update(str(e.get("key", "")).lower() for e in cte_map.get("map", []))
            stack.extend(node.values())
    for ref in refs:
        name = str(ref.get("table_name", ""))
        if ref.get("schema_name") or ref.get("catalog_name") or (
                name.lower() not in tables and name.lower() not in ctes):
            where = ".".join(str(ref[k]) for k in ("catalog_name", "schema_name", "table_name")
                             if ref.get(k))
            raise SqlRejected(f"{where} is not available to a scoped user; read the views "
                              f"{', '.join(sorted(tables))}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def run_sql(con: duckdb.DuckDBPyConnection, schema: str, version: int, text: str, *,
            limit: int, timeout_s: float, max_bytes: int = DEFAULT_SQL_MAX_BYTES,
            only_tables: frozenset[str] | None = None) -> SqlResult:
    """Run analyst SQL with `schema` (the version's views) as the default schema.

    Args:
        limit: at most this many rows (`SqlResult.truncated` says more existed).
        timeout_s: the query is interrupted after this long.
        max_bytes: at most this many bytes of Arrow data are kept; reading stops before the
            batch that would pass it (`SqlResult.over_bytes` says so).
        only_tables: a scoped user's statement may read only these views (`check_scoped`).

    Raises:
        BadValue, SqlRejected, QueryTimeout.
    """
    if not 1 <= limit <= MAX_SQL_ROWS:
        raise BadValue("limit", limit, f"must be between 1 and {MAX_SQL_ROWS}")
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise BadValue("timeout_s", timeout_s, f"must be between 0 and {MAX_TIMEOUT_S:g}")
    if not MIN_SQL_BYTES <= max_bytes <= MAX_SQL_BYTES:
        raise BadValue("max_bytes", max_bytes,
                       f"must be between {MIN_SQL_BYTES} and {MAX_SQL_BYTES}")
    query = check_statement(con, text)
    if only_tables is not None:
        check_scoped(con, query, only_tables)
    cur = con.cursor()  # its own: USE and an interrupt must not touch other queries
    timer = threading.Timer(timeout_s, cur.interrupt)
    timer.daemon = True
    start = time.perf_counter()
    try:
        cur.execute(f"USE {schema}")
        timer.start()
        rel = cur.sql(query)
        if rel is None:  # pragma: no cover - check_statement only lets queries through
            raise SqlRejected("the statement returned no rows")
        reader = rel.limit(limit + 1).to_arrow_reader(SQL_BATCH_ROWS)
        batches, over_bytes = read_capped(reader, max_bytes)
        table = pa.Table.from_batches(batches, reader.schema)
    except duckdb.InterruptException:
        raise QueryTimeout(timeout_s) from None
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        # an error met while reading batches arrives through Arrow, as an OSError
        if "INTERRUPT" in str(exc):
            raise QueryTimeout(timeout_s) from None
        raise SqlRejected(_first_line(exc)) from None
    finally:
        timer.cancel()
        cur.close()
    elapsed = time.perf_counter() - start
    truncated = table.num_rows > limit
    if truncated:
        table = table.slice(0, limit)
    return SqlResult(version, tuple(table.schema.names), table, truncated, elapsed,
                     over_bytes=over_bytes)


def read_capped(reader: pa.RecordBatchReader, max_bytes: int
                ) -> tuple[list[pa.RecordBatch], bool]:
    """The batches of `reader` while their Arrow data stays within `max_bytes`, and whether
    reading stopped there (the rows of the batch that would pass the cap that still fit are
    kept, copied out of it so the rest can be freed)."""
    kept: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        if size + batch.nbytes <= max_bytes:
            kept.append(batch)
            size += batch.nbytes
            continue
        fit = _rows_within(batch, max_bytes - size)
        if fit:
            kept.append(batch.take(pa.array(range(fit), pa.int32())))
        return kept, True
    return kept, False


def _rows_within(batch: pa.RecordBatch, budget: int) -> int:
    """How many leading rows of `batch` take at most `budget` bytes (a binary search)."""
    low, high = 0, batch.num_rows
    while low < high:
        mid = (low + high + 1) // 2
        if batch.slice(0, mid).nbytes <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def write_catalog(path: Path, snap: Snapshot, sources: dict[str, str]) -> Path:
    """Write a DuckDB database file whose views read `snap`'s Parquet files by absolute path.

    `sources` maps view name -> SELECT. The file is written next to `path` and moved into place,
    so a reader never sees half a catalog. The views break once retention deletes the version.
    """
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        for table, select in sources.items():
            con.execute(f"CREATE VIEW {table} AS {select}")
        con.execute("CREATE TABLE snapshot_info (version BIGINT, name VARCHAR, "
                    "created_at VARCHAR, run_id BIGINT, path VARCHAR)")
        con.execute("INSERT INTO snapshot_info VALUES ($v, $n, $c, $r, $p)",
                    {"v": snap.version, "n": snap.name, "c": snap.created_at,
                     "r": snap.manifest.run_id, "p": str(snap.path)})
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, path)
    return path
