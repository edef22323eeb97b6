"""The role map entries admins edit in the Dev page (migration 0010), added to the config's
`[[auth.roles]]`. Entries are validated by the caller (`fmw.authconfig.parse_role`) and kept in
order; a change is announced to every FMW process (LISTEN/NOTIFY, payload: the schema).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from fmw.authconfig import RoleRule, parse_role, role_json

#: Announced when the role map changes (payload: the schema).
ROLES_CHANNEL = "fmw_role_map"
MAX_ENTRIES = 1000


def load_roles(conn: psycopg.Connection) -> list[RoleRule]:
    rows = conn.execute("SELECT position, rule FROM role_map ORDER BY position").fetchall()
    out = []
    for position, rule in rows:
        raw: Any = json.loads(rule) if isinstance(rule, str) else rule
        out.append(parse_role(raw, f"role_map[{position}]"))
    return out


def replace_roles(conn: psycopg.Connection, rules: Sequence[RoleRule]) -> None:
    """Replace every entry in one transaction, announced when it commits."""
    with conn.transaction():
        conn.execute("DELETE FROM role_map")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO role_map (position, rule) VALUES (%s, %s)",
                            [(i, json.dumps(role_json(r), ensure_ascii=False))
                             for i, r in enumerate(rules)])
        conn.execute("SELECT pg_notify(%s, current_schema())", (ROLES_CHANNEL,))
