"""Who may use the HTTP API: the address allow list and the dev API keys (stored hashed).

The API keeps a copy of the allow list in memory; these functions are its only way to the
database. Keys are random 256-bit secrets shown once at creation; only their SHA-256 is
stored (a slow password hash buys nothing for secrets of that entropy), and checks compare
every active hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import psycopg

from fmw.errors import DatabaseUnavailable, FmwError, SchemaBehind
from fmw.settings import Settings
from ledger.db import connect

log = logging.getLogger(__name__)

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")
KEY_PREFIX = "fmw_"
MAX_NOTE = 500
MAX_ENTRIES = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidAllowList(FmwError):
    """An allow-list entry is not a valid CIDR, role or note; carries the entry's index."""

    def __init__(self, index: int, field: str, reason: str) -> None:
        self.index = index
        self.field = field
        self.reason = reason
        super().__init__(f"entry {index}: {field}: {reason}")


@dataclass(frozen=True)
class AllowEntry:
    cidr: Network
    role: Role
    note: str = ""

    def as_json(self) -> dict[str, str]:
        return {"cidr": str(self.cidr), "role": self.role, "note": self.note}


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: `secret` is shown once and never stored."""

    key: ApiKey
    secret: str


@contextmanager
def session(settings: Settings, *, url: str | None = None,
            application_name: str = "fmw-api") -> Iterator[psycopg.Connection]:
    """An autocommit connection whose connection losses surface as DatabaseUnavailable.

    `url` skips resolving the database URL (which may start the embedded server) per call.

    Raises:
        DatabaseUnavailable: the server cannot be reached, or went away mid-request.
    """
    conn = connect(settings, autocommit=True, url=url, application_name=application_name)
    try:
        yield conn
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"the ledger database went away: {exc}".strip()) from exc
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaBehind(f"the ledger schema {settings.schema!r} lacks a table ({exc}): "
                           "run `fmw db upgrade`") from exc
    finally:
        conn.close()


def parse_entry(raw: object, index: int) -> AllowEntry:
    """Validate one entry ``{"cidr": ..., "role": "user"|"admin", "note": ...}``.

    A bare address means a single host (/32 or /128). Host bits set under the mask are refused,
    since ``10.1.2.3/8`` is usually a typo for one host or for ``10.0.0.0/8``.

    Raises:
        InvalidAllowList: naming the entry and the field.
    """
    if not isinstance(raw, dict):
        raise InvalidAllowList(index, "entry", "must be an object with cidr, role and note")
    unknown = sorted(set(raw) - {"cidr", "role", "note"})
    if unknown:
        raise InvalidAllowList(index, unknown[0], "unknown field; valid: cidr, role, note")
    cidr_s, role, note = raw.get("cidr"), raw.get("role", "user"), raw.get("note", "")
    if not isinstance(cidr_s, str) or not cidr_s.strip():
        raise InvalidAllowList(index, "cidr", "required, e.g. '10.20.0.0/16' or '10.20.1.5'")
    try:
        net = ipaddress.ip_network(cidr_s.strip(), strict=True)
    except ValueError as exc:
        raise InvalidAllowList(index, "cidr", f"{cidr_s!r} is not a valid CIDR: {exc}") from None
    if role not in ROLES:
        raise InvalidAllowList(index, "role", f"{role!r} is not one of: {', '.join(ROLES)}")
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidAllowList(index, "note", f"must be text of at most {MAX_NOTE} characters")
    if any(ord(ch) < 32 and ch not in "\t" for ch in note):
        raise InvalidAllowList(index, "note", "must not contain control characters")
    return AllowEntry(cidr=net, role=cast(Role, role), note=note.strip())


def parse_entries(raw: Sequence[object]) -> list[AllowEntry]:
    """Validate a whole list; the same network twice is refused (which role would win?).

    Raises:
        InvalidAllowList: the first bad entry.
    """
    if len(raw) > MAX_ENTRIES:
        raise InvalidAllowList(MAX_ENTRIES, "entries", f"at most {MAX_ENTRIES} entries")
    out: list[AllowEntry] = []
    seen: dict[Network, int] = {}
    for i, item in enumerate(raw):
        e = parse_entry(item, i)
        if e.cidr in seen:
            raise InvalidAllowList(i, "cidr", f"{e.cidr} is already entry {seen[e.cidr]}")
        seen[e.cidr] = i
        out.append(e)
    return out


def load_allow_list(conn: psycopg.Connection) -> list[AllowEntry]:
    rows = conn.execute("SELECT cidr, role, note FROM allow_list ORDER BY cidr").fetchall()
    return [AllowEntry(cidr=ipaddress.ip_network(str(c)), role=r, note=n) for c, r, n in rows]


#: PostgreSQL channel on which a changed allow list is announced (payload: the schema).
ALLOW_LIST_CHANNEL = "fmw_allow_list"


def replace_allow_list(conn: psycopg.Connection, entries: Sequence[AllowEntry]) -> None:
    """Replace the whole list in one transaction, announced to every listening FMW process
    when it commits (`listen_allow_list`)."""
    with conn.transaction():
        conn.execute("DELETE FROM allow_list")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO allow_list (cidr, role, note) VALUES (%s::cidr, %s, %s)",
                [(str(e.cidr), e.role, e.note) for e in entries],
            )
        conn.execute("SELECT pg_notify(%s, current_schema())", (ALLOW_LIST_CHANNEL,))


def listen_allow_list(settings: Settings, changed: Callable[[], object],
                      stop: threading.Event, *, retry_s: float = 5.0) -> None:
    """Call `changed` whenever this schema's allow list changes, until `stop` is set."""
    listen(settings, {ALLOW_LIST_CHANNEL: changed}, stop, retry_s=retry_s)


def listen(settings: Settings, handlers: Mapping[str, Callable[[], object]],
           stop: threading.Event, *, retry_s: float = 5.0) -> None:
    """Call the handler of a channel whenever this schema announces a change on it (the
    allow list, personal tokens), until `stop` is set.

    Runs in its own thread on its own connection. When PostgreSQL is away it retries every
    `retry_s` (the caller's periodic refresh and last good copy cover the gap), and calls
    every handler after reconnecting, since a change may have been missed meanwhile.
    """
    first = True
    while not stop.is_set():
        try:
            with connect(settings, autocommit=True,
                         application_name="fmw-allowlist-listen") as conn:
                for channel in handlers:
                    conn.execute(f"LISTEN {channel}")
                if not first:
                    for handler in handlers.values():
                        handler()
                first = False
                while not stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        if note.payload == settings.schema and note.channel in handlers:
                            handlers[note.channel]()
        except (FmwError, psycopg.Error) as exc:
            log.debug("change listener: %s; retrying in %.0f s", exc, retry_s)
            first = False
            stop.wait(retry_s)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(conn: psycopg.Connection, name: str) -> NewKey:
    """Create a key named `name`; the returned secret is the only copy.

    Raises:
        FmwError: the name is empty or too long.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise FmwError("an API key needs a name of 1-100 characters")
    prefix = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = conn.execute(
        "INSERT INTO api_keys (name, prefix, key_hash) VALUES (%s, %s, %s) "
        "RETURNING id, name, prefix, created_at, last_used_at, revoked_at",
        (name, prefix, hash_key(secret)),
    ).fetchone()
    assert row is not None
    return NewKey(key=ApiKey(*row), secret=secret)


def list_keys(conn: psycopg.Connection) -> list[ApiKey]:
    rows = conn.execute("SELECT id, name, prefix, created_at, last_used_at, revoked_at "
                        "FROM api_keys ORDER BY id").fetchall()
    return [ApiKey(*r) for r in rows]


def revoke_key(conn: psycopg.Connection, ident: str) -> ApiKey:
    """Revoke by prefix (as `fmw apikey list` shows it) or, failing that, by id.

    Raises:
        FmwError: no such active key.
    """
    returning = "RETURNING id, name, prefix, created_at, last_used_at, revoked_at"
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = now() WHERE prefix = %s AND revoked_at IS NULL "
        f"{returning}", (ident,)).fetchone()
    if row is None and ident.isdigit() and len(ident) < 19:
        row = conn.execute(
            f"UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
            f"{returning}", (int(ident),)).fetchone()
    if row is None:
        raise FmwError(f"no active API key {ident!r} (use `fmw apikey list`)")
    return ApiKey(*row)


def check_key(conn: psycopg.Connection, presented: str) -> ApiKey | None:
    """The active key matching `presented`, or None.

    Every active hash is compared with `hmac.compare_digest`, without stopping early, so the
    time taken does not tell which prefix or how much of a hash matched.
    """
    wanted = hash_key(presented)
    rows = conn.execute("SELECT id, key_hash FROM api_keys WHERE revoked_at IS NULL").fetchall()
    found: int | None = None
    for key_id, stored in rows:
        if hmac.compare_digest(wanted.encode(), str(stored).encode()):
            found = int(key_id)
    if found is None:
        return None
    row = conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = %s "
        "RETURNING id, name, prefix, created_at, last_used_at, revoked_at", (found,)
    ).fetchone()
    return ApiKey(*row) if row else None
