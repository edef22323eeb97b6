"""Deploys and smoke tests as the ledger keeps them (migration 0009), for `fmw status`."""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

import psycopg


def record_deploy(conn: psycopg.Connection, version: str, started_at: datetime, outcome: str,
                  rolled_back: bool, detail: str | None = None) -> int:
    row = conn.execute(
        "INSERT INTO deploys (version, host, started_at, outcome, rolled_back, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (version, socket.gethostname(), started_at, outcome, rolled_back, detail)).fetchone()
    return int(row[0]) if row else 0


def record_smoke(conn: psycopg.Connection, url: str, ok: bool, failed: str | None) -> None:
    conn.execute("INSERT INTO smoke_runs (host, url, ok, failed) VALUES (%s, %s, %s, %s)",
                 (socket.gethostname(), url, ok, failed))


def last(conn: psycopg.Connection) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The newest deploy and the newest smoke test (None when there is none)."""
    out: list[dict[str, Any] | None] = []
    for sql in ("SELECT version, host, started_at, finished_at, outcome, rolled_back, detail "
                "FROM deploys ORDER BY id DESC LIMIT 1",
                "SELECT at, host, url, ok, failed FROM smoke_runs ORDER BY id DESC LIMIT 1"):
        cur = conn.execute(sql)
        row = cur.fetchone()
        names = [d.name for d in cur.description or []]
        out.append(dict(zip(names, row, strict=True)) if row else None)
    return out[0], out[1]
