"""Run bookkeeping: the cross-process sync lock, run rows, daily counts and read-back for the CLI."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from fmw.errors import SyncAlreadyRunning

#: First key of the two-key advisory lock: "FMW" in ASCII. The second key is the schema's hash,
#: so instances sharing one database but using different schemas do not block each other.
LOCK_CLASS = 0x464D57

INTERRUPTED = ("interrupted: the sync process ended before finishing (killed or crashed); "
               "nothing was applied")


@dataclass(frozen=True)
class RunSummary:
    """One row of `runs`, as the CLI and later the dev API show it."""

    id: int
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    day: date
    sources: list[str]
    rows_read: int
    rows_bad: int
    conflicts: int
    created: int
    updated: int
    deleted: int
    unchanged: int
    source_stats: dict[str, Any]
    phase_seconds: dict[str, float]
    error_summary: str | None

    def as_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("started_at", "finished_at", "day"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        return d


_RUN_COLS = ("id, trigger, status, started_at, finished_at, day, sources, rows_read, rows_bad, "
             "conflicts, created, updated, deleted, unchanged, source_stats, phase_seconds, "
             "error_summary")


def acquire_lock(conn: psycopg.Connection, schema: str) -> None:
    """Take the session-level sync lock on `conn` (autocommit), or raise.

    The lock belongs to the connection's server session, so it is released by PostgreSQL when
    the process dies, however it dies.

    Raises:
        SyncAlreadyRunning: with the running run's id when one is recorded.
    """
    got = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, schema)).fetchone()
    if got and got[0]:
        return
    row = conn.execute("SELECT max(id) FROM runs WHERE status = 'running'").fetchone()
    raise SyncAlreadyRunning(row[0] if row else None)


def release_lock(conn: psycopg.Connection, schema: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, schema))


def run_backend_name(schema: str, run_id: int) -> str:
    """The ``application_name`` of the connection that does run `run_id`'s work.

    It names the schema too: run ids are per schema, and several schemas may share a server.
    PostgreSQL keeps at most 63 bytes of it.
    """
    return f"fmw-sync-run-{run_id}@{schema}"[:63]


def fail_interrupted_runs(conn: psycopg.Connection, schema: str) -> list[int]:
    """Mark runs left 'running' by a dead process as failed. Call only while holding the lock.

    The dead process's work connection may still be inside a long statement: PostgreSQL notices
    a vanished client only when it next reads or writes the socket, or through
    ``client_connection_check_interval``, which the server refuses on Windows. Holding the lock
    proves the owner is gone, so such leftovers are ended here before the new run starts:
    otherwise the new run would wait on their row locks until their statement finished.
    """
    rows = conn.execute(
        "UPDATE runs SET status = 'failed', finished_at = clock_timestamp(), error_summary = %s "
        "WHERE status = 'running' RETURNING id, day", (INTERRUPTED,)
    ).fetchall()
    for _, day in rows:
        bump_daily(conn, day, runs=1, failed_runs=1)
    ids = [r[0] for r in rows]
    if ids:
        terminate_backends(conn, [run_backend_name(schema, i) for i in ids])
    return ids


def terminate_backends(conn: psycopg.Connection, names: list[str], wait_s: float = 30.0) -> int:
    """End the server sessions whose ``application_name`` is one of `names` and wait until they
    are gone (their transactions roll back). Returns how many were ended."""
    # PostgreSQL 14+ waits for the session to be gone; older servers only signal it.
    call = ("pg_terminate_backend(pid, %(ms)s)" if conn.info.server_version >= 140000
            else "pg_terminate_backend(pid)")
    row = conn.execute(
        f"SELECT count(*) FILTER (WHERE {call}) FROM pg_stat_activity "
        "WHERE application_name = ANY(%(names)s) AND datname = current_database() "
        "AND pid <> pg_backend_pid()", {"ms": int(wait_s * 1000), "names": names}).fetchone()
    return int(row[0]) if row else 0


def start_run(conn: psycopg.Connection, trigger: str, sources: list[str], timezone: str) -> int:
    """Insert a 'running' run row (committed at once so other processes can see it)."""
    row = conn.execute(
        "INSERT INTO runs (trigger, status, day, sources, host, pid) "
        "VALUES (%s, 'running', (now() AT TIME ZONE %s)::date, %s, %s, %s) RETURNING id",
        (trigger, timezone, sources, socket.gethostname(), os.getpid()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def bump_daily(conn: psycopg.Connection, day: date, **counts: int) -> None:
    """Add `counts` (created, updated, deleted, errors, runs, failed_runs) to one day's row."""
    cols = list(counts)
    sets = ", ".join(f"{c} = daily_counts.{c} + EXCLUDED.{c}" for c in cols)
    conn.execute(
        f"INSERT INTO daily_counts (day, {', '.join(cols)}) VALUES (%s{', %s' * len(cols)}) "
        f"ON CONFLICT (day) DO UPDATE SET {sets}",
        (day, *counts.values()),
    )


def finish_run(conn: psycopg.Connection, run_id: int, status: str, *, counts: dict[str, int],
               source_stats: dict[str, Any], phase_seconds: dict[str, float],
               error_summary: str | None) -> None:
    """Close a run row and add it to `daily_counts` (in the caller's transaction)."""
    row = conn.execute(
        "UPDATE runs SET status = %s, finished_at = clock_timestamp(), rows_read = %s, "
        "rows_bad = %s, conflicts = %s, created = %s, updated = %s, deleted = %s, unchanged = %s, "
        "source_stats = %s, phase_seconds = %s, error_summary = %s WHERE id = %s RETURNING day",
        (status, counts.get("rows_read", 0), counts.get("rows_bad", 0), counts.get("conflicts", 0),
         counts.get("created", 0), counts.get("updated", 0), counts.get("deleted", 0),
         counts.get("unchanged", 0), json.dumps(source_stats), json.dumps(phase_seconds),
         error_summary, run_id),
    ).fetchone()
    assert row is not None
    errors = conn.execute("SELECT count(*) FROM run_errors WHERE run_id = %s", (run_id,)).fetchone()
    bump_daily(conn, row[0], created=counts.get("created", 0), updated=counts.get("updated", 0),
               deleted=counts.get("deleted", 0), errors=int(errors[0]) if errors else 0, runs=1,
               failed_runs=1 if status == "failed" else 0)


def record_run_error(conn: psycopg.Connection, run_id: int, *, source: str | None, row: int | None,
                     kind: str, reason: str, raw: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO run_errors (run_id, source, row_no, kind, reason, raw) VALUES (%s,%s,%s,%s,%s,%s)",
        (run_id, source, row, kind, reason, json.dumps(raw, ensure_ascii=False) if raw else None),
    )


def list_runs(conn: psycopg.Connection, limit: int = 20) -> list[RunSummary]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    return [RunSummary(**r) for r in rows]


def get_run(conn: psycopg.Connection, run_id: int) -> RunSummary | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = %s", (run_id,)).fetchone()
    return RunSummary(**row) if row else None


def run_errors(conn: psycopg.Connection, run_id: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Quarantined rows of one run, in source and row order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT source, row_no, kind, reason, identity_hash, raw FROM run_errors "
            "WHERE run_id = %s ORDER BY id LIMIT %s", (run_id, limit)
        ).fetchall()
