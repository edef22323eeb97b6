"""The `snapshots` table: which snapshot versions exist, and who may publish which.

Version numbers are handed out here, one transaction at a time under a table lock, and the
version is the table's primary key, so two writers can never both get (or publish) the same
version. The files themselves live in the snapshots folder (`lake/`). Every function takes an
autocommit connection (`ledger.db.connect(settings, autocommit=True)`); `SnapshotBook` bundles
them with a connection of its own for the lake, which runs no SQL itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from fmw.settings import Settings
from ledger.db import connect
from ledger.schema import require_current

SnapshotStatus = Literal["writing", "published", "failed", "deleted"]

#: First key of the advisory lock held while a version is made current ("FMS" in ASCII); the
#: second is the schema's hash, as for the sync lock (`ledger.runs.LOCK_CLASS`).
PUBLISH_LOCK_CLASS = 0x464D53

_COLS = "version, run_id, status, created_at, published_at, rows, bytes, error"


@dataclass(frozen=True)
class SnapshotRecord:
    """One row of `snapshots` (without the manifest)."""

    version: int
    run_id: int | None
    status: SnapshotStatus
    created_at: datetime
    published_at: datetime | None
    rows: int | None
    bytes: int | None
    error: str | None


def allocate_version(conn: psycopg.Connection, run_id: int | None, *, at_least: int = 0) -> int:
    """Insert a 'writing' row with the next version number and commit it.

    The number is one above both the highest recorded version and `at_least` (the highest
    version folder on disk, in case the folder outlived its database).
    """
    with conn.transaction():
        # SHARE ROW EXCLUSIVE conflicts with itself: allocations queue, each sees the last.
        conn.execute("LOCK TABLE snapshots IN SHARE ROW EXCLUSIVE MODE")
        row = conn.execute(
            "INSERT INTO snapshots (version, run_id, status) "
            "SELECT greatest(coalesce(max(version), 0), %s) + 1, %s, 'writing' FROM snapshots "
            "RETURNING version", (at_least, run_id),
        ).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def publishing(conn: psycopg.Connection, schema: str, version: int, *, rows: int, size: int,
               manifest: dict[str, Any]) -> Iterator[None]:
    """Mark `version` published; the block runs under the publish lock, before the commit.

    The lock serialises making versions current across processes and machines; if the block
    raises, the row stays 'writing' (the caller marks it failed).

    Raises:
        ValueError: `version` is not a 'writing' version (never allocated, or already failed).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (PUBLISH_LOCK_CLASS, schema))
        done = conn.execute(
            "UPDATE snapshots SET status = 'published', published_at = clock_timestamp(), "
            "rows = %s, bytes = %s, manifest = %s::jsonb, error = NULL "
            "WHERE version = %s AND status = 'writing'",
            (rows, size, json.dumps(manifest), version),
        )
        if done.rowcount != 1:
            raise ValueError(f"snapshot version {version} is not being written")
        yield


def mark_failed(conn: psycopg.Connection, versions: list[int], error: str) -> list[int]:
    """Mark 'writing' versions failed with `error`; returns those that were."""
    if not versions:
        return []
    rows = conn.execute(
        "UPDATE snapshots SET status = 'failed', error = %s "
        "WHERE version = ANY(%s) AND status = 'writing' RETURNING version", (error, versions),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def mark_deleted(conn: psycopg.Connection, versions: list[int]) -> None:
    """Record that retention removed these versions' folders."""
    if versions:
        conn.execute("UPDATE snapshots SET status = 'deleted' WHERE version = ANY(%s)", (versions,))


def fail_abandoned(conn: psycopg.Connection, older_than_s: float, error: str) -> list[int]:
    """Mark versions 'writing' for longer than `older_than_s` seconds failed (writer gone)."""
    rows = conn.execute(
        "UPDATE snapshots SET status = 'failed', error = %s WHERE status = 'writing' "
        "AND created_at < clock_timestamp() - make_interval(secs => %s) RETURNING version",
        (error, older_than_s),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def list_snapshots(conn: psycopg.Connection, limit: int | None = None) -> list[SnapshotRecord]:
    """Recorded versions, newest first."""
    sql = f"SELECT {_COLS} FROM snapshots ORDER BY version DESC"
    params: tuple[Any, ...] = ()
    if limit is not None:
        sql += " LIMIT %s"
        params = (limit,)
    return [SnapshotRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            for r in conn.execute(sql, params).fetchall()]


def get_manifest(conn: psycopg.Connection, version: int) -> dict[str, Any] | None:
    """The manifest recorded when `version` was published (None if it never was)."""
    row = conn.execute("SELECT manifest FROM snapshots WHERE version = %s", (version,)).fetchone()
    return row[0] if row else None


class SnapshotBook:
    """The `snapshots` table over one autocommit connection of its own, for the lake.

    Use as a context manager (or call `close`). Every method is one short transaction.
    """

    def __init__(self, settings: Settings) -> None:
        self._schema = settings.schema
        self._conn = connect(settings, autocommit=True, application_name="fmw-snapshot")

    def __enter__(self) -> SnapshotBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def require_current(self) -> None:
        """Raises SchemaBehind unless the schema is at the code's revision."""
        require_current(self._conn, self._schema)

    def allocate(self, run_id: int | None, *, at_least: int = 0) -> int:
        return allocate_version(self._conn, run_id, at_least=at_least)

    def publishing(self, version: int, *, rows: int, size: int,
                   manifest: dict[str, Any]) -> AbstractContextManager[None]:
        return publishing(self._conn, self._schema, version, rows=rows, size=size,
                          manifest=manifest)

    def mark_failed(self, versions: list[int], error: str) -> list[int]:
        return mark_failed(self._conn, versions, error)

    def mark_deleted(self, versions: list[int]) -> None:
        mark_deleted(self._conn, versions)

    def fail_abandoned(self, older_than_s: float, error: str) -> list[int]:
        return fail_abandoned(self._conn, older_than_s, error)

    def list(self, limit: int | None = None) -> list[SnapshotRecord]:
        return list_snapshots(self._conn, limit)
