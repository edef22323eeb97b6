"""Reading the change history back (CLI now, the dev API later)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True)
class ChangeFilter:
    since: datetime | None = None
    until: datetime | None = None
    run_id: int | None = None
    group: str | None = None
    identity: str | None = None
    op: str | None = None
    limit: int = 100
    after_id: int | None = None


def list_changes(conn: psycopg.Connection, f: ChangeFilter) -> list[dict[str, Any]]:
    """Changes matching `f`, oldest first (keyset-paged by `after_id`)."""
    where, params = ["true"], []
    for cond, value in (
        ("changed_at >= %s", f.since), ("changed_at < %s", f.until), ("run_id = %s", f.run_id),
        ("feature_group = %s", f.group), ("op = %s", f.op), ("id > %s", f.after_id),
    ):
        if value is not None:
            where.append(cond)
            params.append(value)
    if f.identity:
        where.append("identity_hash LIKE %s")
        params.append(f.identity.lower() + "%")
    params.append(f.limit)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, run_id, identity_hash, feature_group, op, changed_fields, changed_at, "
            "before_json, after_json FROM changes WHERE " + " AND ".join(where)
            + " ORDER BY id LIMIT %s", params,
        ).fetchall()
