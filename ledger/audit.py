"""The audit log of dev API calls: an append-only hash chain, and its verification.

Row n's hash is SHA-256 over a canonical JSON array of its own fields (seq, time, client, key,
method, path, query, status, detail) and row n-1's hash; row 1 chains to 64 zeros. ``seq`` is
gapless and `audit_head` holds the newest (seq, hash), so an edited row, a deleted row in the
middle and rows cut off the end are all detected by `verify_chain`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """What the API records about one dev call."""

    client: str
    method: str
    path: str
    query: str
    status: int
    key_id: int | None = None
    detail: str | None = None
    #: The signed-in user (OpenID subject, or the owner of a personal token) and their name.
    subject: str | None = None
    user_name: str | None = None


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    problems: tuple[str, ...]


def row_hash(seq: int, at: datetime, e: AuditEntry, prev_hash: str) -> str:
    """The hash of one row (the reference definition; `verify_chain` recomputes it)."""
    payload = [seq, at.astimezone(UTC).isoformat(timespec="microseconds"), e.client, e.key_id,
               e.method, e.path, e.query, e.status, e.detail, prev_hash]
    if e.subject is not None or e.user_name is not None:  # rows before migration 0010 lack them
        payload += [e.subject, e.user_name]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _storable_text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL, and a lone surrogate is not UTF-8: written as escapes,
    # so an odd request can never make its own audit row fail (and be applied unaudited)
    if value is None:
        return None
    value = value.replace("\x00", "\\0")
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def storable(entry: AuditEntry) -> AuditEntry:
    """`entry` with every text field storable as PostgreSQL text (hashed as stored)."""
    return replace(entry, client=_storable_text(entry.client) or "",
                   method=_storable_text(entry.method) or "", path=_storable_text(entry.path) or "",
                   query=_storable_text(entry.query) or "", detail=_storable_text(entry.detail),
                   subject=_storable_text(entry.subject),
                   user_name=_storable_text(entry.user_name))


def append(conn: psycopg.Connection, entry: AuditEntry) -> int:
    """Append one row to the chain; returns its seq.

    The exclusive table lock serialises concurrent writers (API threads, processes) so each
    row links to the true previous one; it is held only for this short transaction.
    """
    entry = storable(entry)
    with conn.transaction():
        conn.execute("LOCK TABLE audit_head IN EXCLUSIVE MODE")
        head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS)
        at = datetime.now(UTC)
        h = row_hash(seq, at, entry, prev)
        conn.execute(
            "INSERT INTO audit_log (seq, at, client, key_id, method, path, query, status, detail, "
            "prev_hash, hash, subject, user_name) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (seq, at, entry.client, entry.key_id, entry.method, entry.path, entry.query,
             entry.status, entry.detail, prev, h, entry.subject, entry.user_name),
        )
        conn.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash", (seq, h),
        )
    return seq


def verify_chain(conn: psycopg.Connection, max_problems: int = 20) -> AuditVerification:
    """Walk the whole chain in seq order and recompute every hash (streams; constant memory)."""
    problems: list[str] = []
    expected_seq, prev, rows = 1, GENESIS, 0

    def note(msg: str) -> None:
        if len(problems) < max_problems:
            problems.append(msg)

    with conn.transaction():
        # one consistent snapshot: rows and head as they were at one instant
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        cur = conn.cursor(name="audit_verify")
        cur.itersize = 5000
        cur.execute("SELECT seq, at, client, key_id, method, path, query, status, detail, "
                    "prev_hash, hash, subject, user_name FROM audit_log ORDER BY seq")
        for r in cur:
            rows += 1
            seq, at, stored_prev, stored = int(r[0]), r[1], str(r[9]), str(r[10])
            entry = AuditEntry(client=r[2], key_id=r[3], method=r[4], path=r[5], query=r[6],
                               status=int(r[7]), detail=r[8], subject=r[11], user_name=r[12])
            if seq != expected_seq:
                note(f"rows {expected_seq}..{seq - 1} are missing (deleted)"
                     if seq > expected_seq else f"row {seq} is out of order")
            if stored_prev != prev:
                note(f"row {seq}: does not link to the row before it (a row was deleted or "
                     "changed before it)")
            if row_hash(seq, at, entry, stored_prev) != stored:
                note(f"row {seq}: content does not match its hash (the row was changed)")
            expected_seq, prev = seq + 1, stored
        cur.close()
    head_seq, head_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    if head_seq != expected_seq - 1 or head_hash != prev:
        note(f"the chain ends at row {expected_seq - 1} but the head says row {head_seq} "
             "(rows were deleted from the end, or the head was changed)")
    return AuditVerification(ok=not problems, rows=rows, head_seq=head_seq, head_hash=head_hash,
                             problems=tuple(problems))


def recent(conn: psycopg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The newest rows, newest first."""
    cur = conn.execute("SELECT seq, at, client, subject, user_name, key_id, method, path, query, "
                       "status, detail, hash FROM audit_log ORDER BY seq DESC LIMIT %s", (limit,))
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# -- anchors: the head written outside the database ----------------------------------------
#
# The chain proves that rows were not changed *unless* someone rewrites every hash after the
# change, which anyone with write access to the database can do (the chain is unkeyed and its
# head lives beside it). An anchor is a copy of the head (seq, hash) kept outside PostgreSQL:
# in each backup's backup.json, in `<data_dir>/audit/anchors.jsonl` and in the service log. A
# rewritten chain no longer contains the anchored hashes, so `fmw audit verify` finds it.

ANCHORS_FILE = "anchors.jsonl"


@dataclass(frozen=True)
class AuditAnchor:
    seq: int
    hash: str
    at: str
    where: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at}


def head(conn: psycopg.Connection) -> AuditAnchor:
    """The chain's head now, as an anchor to keep elsewhere."""
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    seq, h = (int(row[0]), str(row[1])) if row else (0, GENESIS)
    return AuditAnchor(seq, h, datetime.now(UTC).isoformat(timespec="seconds"))


def anchors_path(data_dir: Path) -> Path:
    return data_dir / "audit" / ANCHORS_FILE


def save_anchor(data_dir: Path, anchor: AuditAnchor) -> Path:
    """Append `anchor` to the anchors file (one JSON object per line)."""
    path = anchors_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(anchor.as_json(), separators=(",", ":")) + "\n")
    return path


def load_anchors(data_dir: Path) -> tuple[list[AuditAnchor], list[str]]:
    """The anchors kept in `data_dir`, and the lines that could not be read."""
    path = anchors_path(data_dir)
    found: list[AuditAnchor] = []
    bad: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return found, bad
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            found.append(AuditAnchor(int(d["seq"]), str(d["hash"]), str(d.get("at", "")),
                                     f"{path}:{n}"))
        except (ValueError, KeyError, TypeError):
            bad.append(f"{path}:{n}: not an anchor")
    return found, bad


def check_anchors(conn: psycopg.Connection, anchors: list[AuditAnchor]) -> list[str]:
    """Problems: an anchored row that is gone, or whose hash is no longer the anchored one."""
    problems: list[str] = []
    wanted = sorted({a.seq for a in anchors if a.seq > 0})
    stored: dict[int, str] = {}
    if wanted:
        cur = conn.execute("SELECT seq, hash FROM audit_log WHERE seq = ANY(%s)", (wanted,))
        stored = {int(s): str(h) for s, h in cur.fetchall()}
    for a in anchors:
        if a.seq <= 0:
            continue
        where = f" ({a.where})" if a.where else ""
        if a.seq not in stored:
            problems.append(f"row {a.seq}, anchored {a.at}{where}, is gone: rows were deleted")
        elif stored[a.seq] != a.hash:
            problems.append(f"row {a.seq} no longer has the hash anchored {a.at}{where}: the "
                            "log was rewritten up to or past that row")
    return problems
