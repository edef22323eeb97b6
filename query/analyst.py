"""For analysts: read-only SQL over a version's views, and a DuckDB catalog file for DBeaver.

`run_sql` accepts exactly one statement that DuckDB parses as a SELECT (which covers WITH,
DESCRIBE, SHOW, SUMMARIZE, VALUES and FROM-first queries), caps the rows and interrupts the
query from a timer thread after the time limit. The engine's DuckDB cannot touch files outside
the snapshots folder nor change its configuration, whatever the statement says.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import duckdb

from query.errors import BadValue, QueryTimeout, SqlRejected
from query.results import SqlResult
from query.snapshot import Snapshot

MAX_SQL_ROWS = 1_000_000
MAX_TIMEOUT_S = 600.0


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


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def run_sql(con: duckdb.DuckDBPyConnection, schema: str, version: int, text: str, *,
            limit: int, timeout_s: float) -> SqlResult:
    """Run analyst SQL with `schema` (the version's views) as the default schema.

    Raises:
        BadValue, SqlRejected, QueryTimeout.
    """
    if not 1 <= limit <= MAX_SQL_ROWS:
        raise BadValue("limit", limit, f"must be between 1 and {MAX_SQL_ROWS}")
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise BadValue("timeout_s", timeout_s, f"must be between 0 and {MAX_TIMEOUT_S:g}")
    query = check_statement(con, text)
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
        table = rel.limit(limit + 1).to_arrow_table()
    except duckdb.InterruptException:
        raise QueryTimeout(timeout_s) from None
    except duckdb.Error as exc:
        raise SqlRejected(_first_line(exc)) from None
    finally:
        timer.cancel()
        cur.close()
    elapsed = time.perf_counter() - start
    truncated = table.num_rows > limit
    if truncated:
        table = table.slice(0, limit)
    return SqlResult(version, tuple(table.schema.names), table, truncated, elapsed)


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
