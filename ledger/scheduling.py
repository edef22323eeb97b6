"""The scheduler's SQL: persisted fire times, skipped and retried runs, the scheduler lock, and
cancelling this process's own sync when the service stops.

The scheduler itself (APScheduler, in `scheduler/`) keeps its jobs in memory; what must survive
a restart lives here, so the catch-up decision after downtime is a comparison of
`scheduler_state.last_fire_at` with the schedule.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ledger.runs import LOCK_CLASS, run_backend_name

#: First key of the scheduler's own advisory lock ("FMH", the host): one active scheduler per
#: schema. Distinct from the sync lock (runs.LOCK_CLASS, "FMW") and the snapshot publish lock
#: (snapshots.PUBLISH_LOCK_CLASS, "FMS"); a test checks they never collide.
SCHEDULER_LOCK_CLASS = 0x464D48

SKIPPED_PREFIX = "skipped: "


@dataclass(frozen=True)
class FireState:
    """One row of `scheduler_state`."""

    job_id: str
    last_fire_at: datetime
    last_run_id: int | None
    last_outcome: str | None
    host: str | None
    pid: int | None
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["last_fire_at"] = self.last_fire_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat()
        return d


_STATE_COLS = "job_id, last_fire_at, last_run_id, last_outcome, host, pid, updated_at"


def fire_states(conn: psycopg.Connection) -> dict[str, FireState]:
    """Every persisted fire time, by job id."""
    rows = conn.execute(f"SELECT {_STATE_COLS} FROM scheduler_state ORDER BY job_id").fetchall()
    return {r[0]: FireState(*r) for r in rows}


def get_fire_state(conn: psycopg.Connection, job_id: str) -> FireState | None:
    row = conn.execute(f"SELECT {_STATE_COLS} FROM scheduler_state WHERE job_id = %s",
                       (job_id,)).fetchone()
    return FireState(*row) if row else None


def record_fire(conn: psycopg.Connection, job_id: str, fired_at: datetime,
                run_id: int | None = None, outcome: str | None = None) -> None:
    """Persist that the fire of `job_id` at `fired_at` was handled (never moves time back)."""
    conn.execute(
        "INSERT INTO scheduler_state (job_id, last_fire_at, last_run_id, last_outcome, host, pid) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (job_id) DO UPDATE SET "
        "last_fire_at = greatest(scheduler_state.last_fire_at, EXCLUDED.last_fire_at), "
        "last_run_id = coalesce(EXCLUDED.last_run_id, scheduler_state.last_run_id), "
        "last_outcome = coalesce(EXCLUDED.last_outcome, scheduler_state.last_outcome), "
        "host = EXCLUDED.host, pid = EXCLUDED.pid, updated_at = now()",
        (job_id, fired_at, run_id, outcome, socket.gethostname(), os.getpid()),
    )


def set_fire_time(conn: psycopg.Connection, job_id: str, fired_at: datetime) -> None:
    """Set the last fire time exactly (admin and test use: e.g. to force a catch-up)."""
    conn.execute(
        "INSERT INTO scheduler_state (job_id, last_fire_at) VALUES (%s, %s) "
        "ON CONFLICT (job_id) DO UPDATE SET last_fire_at = EXCLUDED.last_fire_at, "
        "updated_at = now()", (job_id, fired_at))


def record_skipped(conn: psycopg.Connection, trigger: str, sources: list[str], timezone: str,
                   running_run_id: int | None) -> int:
    """Record a trigger that found another sync running: a closed run row, status 'skipped'.

    Skipped runs do not count in `daily_counts` (nothing ran).
    """
    which = f"run {running_run_id}" if running_run_id is not None else "another run"
    row = conn.execute(
        "INSERT INTO runs (trigger, status, day, sources, host, pid, finished_at, error_summary) "
        "VALUES (%s, 'skipped', (now() AT TIME ZONE %s)::date, %s, %s, %s, clock_timestamp(), %s) "
        "RETURNING id",
        (trigger, timezone, sources, socket.gethostname(), os.getpid(),
         f"{SKIPPED_PREFIX}{which} was already running"),
    ).fetchone()
    assert row is not None
    return int(row[0])


def mark_retried(conn: psycopg.Connection, run_id: int, note: str) -> None:
    """Flag a failed run that the scheduler retries, and say so in its error summary."""
    conn.execute(
        "UPDATE runs SET retried = true, error_summary = coalesce(error_summary || ' ', '') || %s "
        "WHERE id = %s AND status = 'failed'", (note, run_id))


def note_aborted(conn: psycopg.Connection, run_id: int, reason: str) -> None:
    """Replace a cancelled run's database error text by why it was cancelled."""
    conn.execute("UPDATE runs SET error_summary = %s WHERE id = %s AND status = 'failed'",
                 (reason, run_id))


def own_running_run(conn: psycopg.Connection) -> int | None:
    """The run this process is executing right now, if any."""
    row = conn.execute(
        "SELECT max(id) FROM runs WHERE status = 'running' AND host = %s AND pid = %s",
        (socket.gethostname(), os.getpid())).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def cancel_run_statement(conn: psycopg.Connection, schema: str, run_id: int) -> int:
    """Cancel the statement the sync of `run_id` is executing (its transaction then rolls back).

    Returns the number of backends signalled (0 when the run is between statements).
    """
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database() "
        "AND pid <> pg_backend_pid()", (run_backend_name(schema, run_id),)).fetchone()
    return int(row[0]) if row else 0


def sync_lock_free(conn: psycopg.Connection, schema: str) -> bool:
    """True when no session holds the sync lock of `schema` (checked by taking and releasing it)."""
    got = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                       (LOCK_CLASS, schema)).fetchone()
    if got and got[0]:
        conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, schema))
        return True
    return False


def ping(conn: psycopg.Connection) -> None:
    """Raise psycopg.Error when the session is gone (the scheduler lock with it)."""
    conn.execute("SELECT 1")


def try_scheduler_lock(conn: psycopg.Connection, schema: str) -> bool:
    """Take the session-level scheduler lock on `conn` (autocommit); False if another holds it.

    Only the holder fires scheduled syncs and SLA checks, so two service hosts on one schema
    never both run the schedule (the sync lock would stop the second sync anyway).
    """
    got = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                       (SCHEDULER_LOCK_CLASS, schema)).fetchone()
    return bool(got and got[0])


def scheduler_lock_holder(conn: psycopg.Connection, schema: str) -> dict[str, Any] | None:
    """Who holds the scheduler lock: application name, client address, backend start."""
    row = conn.execute(
        "SELECT a.application_name, host(a.client_addr), a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.objsubid = 2 AND l.classid::bigint = %s "
        "AND l.objid::bigint = (hashtext(%s)::bigint & 4294967295) "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (SCHEDULER_LOCK_CLASS, schema)).fetchone()
    if not row:
        return None
    return {"application_name": row[0], "client_addr": row[1],
            "since": row[2].isoformat() if row[2] else None}
