"""Arrow streams of query results with a bounded memory footprint.

A plain stream is DuckDB's own lazy reader over the statement. A whole-table export of
features in the default order (group, row number in the file) is instead read one group file
at a time, each sorted by its row number, a few files ahead on worker threads: the order stays
explicit (DuckDB does not promise scan order for every plan) without one global sort, which
would hold every row in memory before the first byte is sent. Memory is then bounded by the
groups in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import duckdb
import pyarrow as pa

from query.plan import Prepared


def open_stream(con: duckdb.DuckDBPyConnection, prep: Prepared, select: str | None, *,
                batch_rows: int, workers: int
                ) -> tuple[pa.RecordBatchReader, Callable[[], None]]:
    """(reader, close) for the rows of `prep` (or the `select` list over them)."""
    if prep.in_file_order and len(prep.files) > 1 and prep.limit is None and not prep.offset:
        return _by_file(con, prep, select, batch_rows=batch_rows, workers=max(1, workers))
    cur = con.cursor()  # its own: the reader stays tied to it while being consumed
    try:
        st = prep.stream(select)
        return cur.sql(st.sql, params=st.params).to_arrow_reader(batch_rows), cur.close
    except BaseException:
        cur.close()
        raise


def _by_file(con: duckdb.DuckDBPyConnection, prep: Prepared, select: str | None, *,
             batch_rows: int, workers: int) -> tuple[pa.RecordBatchReader, Callable[[], None]]:
    parts = [replace(prep, files=(f,)) for f in prep.files]

    def run(part: Prepared) -> pa.Table:
        cur = con.cursor()
        try:
            st = part.stream(select)
            return cur.sql(st.sql, params=st.params).to_arrow_table(batch_rows)
        finally:
            cur.close()

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fmw-stream")
    pending: deque[Future[pa.Table]] = deque(pool.submit(run, p) for p in parts[:workers])
    upcoming = iter(parts[workers:])

    def close() -> None:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)

    try:
        schema = pending[0].result().schema
    except BaseException:
        close()
        raise

    def batches() -> Generator[pa.RecordBatch, None, None]:
        try:
            while pending:
                table = pending.popleft().result()
                nxt = next(upcoming, None)
                if nxt is not None:
                    pending.append(pool.submit(run, nxt))
                yield from table.to_batches(batch_rows)
        finally:
            close()

    gen = batches()

    def close_all() -> None:
        gen.close()
        close()

    return pa.RecordBatchReader.from_batches(schema, gen), close_all
