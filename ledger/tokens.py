"""Personal API tokens (migration 0010): a signed-in user makes one for a program or script.

A token carries the role and row scope its owner had when it was made (never admin: the dev
API takes admin API keys or an admin's sign-on), expires, can be revoked, and is stored only
as a SHA-256 hash. The secret is ``fmwp_<prefix>_<random>``; the prefix finds the row.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from fmw.errors import FmwError
from ledger.access import hash_key

TOKEN_PREFIX = "fmwp_"
#: Announced (payload: the schema) when a token is revoked, so API processes forget it at once.
TOKENS_CHANNEL = "fmw_personal_tokens"
_SECRET_RE = re.compile(r"^fmwp_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
_COLUMNS = ("id, prefix, subject, user_name, name, role, scope_json, created_at, expires_at, "
            "revoked_at, last_used_at")


class TokenRefused(FmwError):
    """A personal token cannot be made or changed as asked."""


@dataclass(frozen=True)
class PersonalToken:
    id: int
    prefix: str
    subject: str
    user_name: str
    name: str
    role: str  # "viewer" or "scoped"
    scope: list[dict[str, list[str]]] | None  # rules as stored; None: every row
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "prefix": self.prefix, "name": self.name, "role": self.role,
                "scope": self.scope, "created_at": self.created_at,
                "expires_at": self.expires_at, "revoked_at": self.revoked_at,
                "last_used_at": self.last_used_at}


@dataclass(frozen=True)
class NewToken:
    """A token just made: `secret` is shown once and never stored."""

    token: PersonalToken
    secret: str


def _row(row: Any) -> PersonalToken:
    values = list(row)
    if isinstance(values[6], str):
        values[6] = json.loads(values[6])
    return PersonalToken(*values)


def looks_like_token(presented: str) -> bool:
    return presented.startswith(TOKEN_PREFIX)


def create(conn: psycopg.Connection, *, subject: str, user_name: str, name: str, role: str,
           scope: list[dict[str, list[str]]] | None, days: int, max_days: int) -> NewToken:
    """Make a token for `subject` with `role` and `scope` valid for `days`.

    Raises:
        TokenRefused: bad name, role, scope or lifetime.
    """
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise TokenRefused("a token needs a name of 1-100 printable characters")
    if role not in ("viewer", "scoped"):
        raise TokenRefused(f"a personal token is a 'viewer' or 'scoped' token, not {role!r} "
                           "(the dev API takes admin API keys: `fmw apikey create`)")
    if (role == "scoped") != (scope is not None):
        raise TokenRefused("a scoped token needs its scope, a viewer token has none")
    if not 1 <= days <= max_days:
        raise TokenRefused(f"a token lives 1 to {max_days} days, not {days}")
    if not subject or len(subject) > 255:
        raise TokenRefused("the token's owner (subject) is missing or too long")
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = conn.execute(
        f"INSERT INTO personal_tokens (prefix, token_hash, subject, user_name, name, role, "
        f"scope_json, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
        f"clock_timestamp() + %s) RETURNING {_COLUMNS}",
        (prefix, hash_key(secret), subject, user_name[:255], name, role,
         None if scope is None else json.dumps(scope), timedelta(days=days)),
    ).fetchone()
    assert row is not None
    return NewToken(_row(row), secret)


def list_for(conn: psycopg.Connection, subject: str | None = None) -> list[PersonalToken]:
    """Tokens of `subject` (every token when None), newest first."""
    where, args = ("WHERE subject = %s", (subject,)) if subject is not None else ("", ())
    rows = conn.execute(f"SELECT {_COLUMNS} FROM personal_tokens {where} ORDER BY id DESC",
                        args).fetchall()
    return [_row(r) for r in rows]


def revoke(conn: psycopg.Connection, ident: str, *, subject: str | None = None
           ) -> PersonalToken:
    """Revoke by prefix or id; with `subject`, only that user's own token.

    Raises:
        TokenRefused: no such active token (of that user).
    """
    owner = " AND subject = %s" if subject is not None else ""
    extra: tuple[Any, ...] = (subject,) if subject is not None else ()
    row = None
    if re.fullmatch(r"[0-9a-f]{12}", ident):
        row = conn.execute(
            f"UPDATE personal_tokens SET revoked_at = clock_timestamp() WHERE prefix = %s "
            f"AND revoked_at IS NULL{owner} RETURNING {_COLUMNS}", (ident, *extra)).fetchone()
    if row is None and ident.isdigit() and len(ident) < 19:
        row = conn.execute(
            f"UPDATE personal_tokens SET revoked_at = clock_timestamp() WHERE id = %s "
            f"AND revoked_at IS NULL{owner} RETURNING {_COLUMNS}", (int(ident), *extra)
        ).fetchone()
    if row is None:
        raise TokenRefused(f"no active personal token {ident!r}"
                           + (" of yours" if subject is not None else ""))
    conn.execute("SELECT pg_notify(%s, current_schema())", (TOKENS_CHANNEL,))
    return _row(row)


def check(conn: psycopg.Connection, presented: str) -> tuple[PersonalToken | None, str]:
    """The token `presented` names and why it is refused ("" when it is valid).

    Raises nothing for a bad token: the reason says what is wrong.
    """
    m = _SECRET_RE.match(presented)
    if m is None:
        return None, "not a personal token (malformed)"
    row = conn.execute(
        f"SELECT {_COLUMNS}, token_hash, clock_timestamp() FROM personal_tokens "
        f"WHERE prefix = %s", (m[1],)).fetchone()
    if row is None:
        return None, "unknown personal token"
    token, stored, now = _row(row[:-2]), str(row[-2]), row[-1]
    if not hmac.compare_digest(hash_key(presented).encode(), stored.encode()):
        return None, "unknown personal token"
    if token.revoked_at is not None:
        return token, "personal token revoked"
    if token.expires_at <= now:
        return token, "personal token expired"
    conn.execute("UPDATE personal_tokens SET last_used_at = clock_timestamp() WHERE id = %s "
                 "AND (last_used_at IS NULL OR last_used_at < clock_timestamp() - "
                 "interval '1 minute')", (token.id,))
    return token, ""
