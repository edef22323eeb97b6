"""Set-based steps after staging: quarantine, de-duplicate, resolve precedence, diff, apply.

All statements run in the sync's transaction on the temp tables `stage` (every staged row),
`incoming` (one winning row per identity), `delta` (identity, op) and `newrows` (the new
state of created/updated features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from ledger.normalize import STATE_FIELDS
from ledger.stage import quote_ident

if TYPE_CHECKING:
    from ledger.sync import SyncPlan

FEATURE_COLS = ("identity_hash", "row_hash", *STATE_FIELDS, "first_run_id", "first_seen_at",
                "last_run_id", "last_changed_at")
#: Fields that change on every write and so never count as a "changed field".
BOOKKEEPING = ("row_hash", "first_run_id", "first_seen_at", "last_run_id", "last_changed_at")


@dataclass(frozen=True)
class Resolution:
    incoming: int
    duplicates: int
    conflicts: int


def quarantine_invalid(conn: psycopg.Connection, run_id: int, rank: int, raw_table: str) -> int:
    """Copy the source's invalid staged rows, with their raw cells, into run_errors."""
    cur = conn.execute(
        f"""INSERT INTO run_errors (run_id, source, row_no, kind, reason, raw)
        SELECT %s, s.source, s.row_no, 'invalid', s.err, to_jsonb(r) - '__row'
        FROM stage s JOIN {quote_ident(raw_table)} r ON r."__row" = s.row_no
        WHERE s.src_rank = %s AND s.err IS NOT NULL
        ORDER BY s.row_no""",
        (run_id, rank),
    )
    return cur.rowcount


def _build_incoming(conn: psycopg.Connection) -> int:
    conn.execute("DROP TABLE IF EXISTS incoming")
    cur = conn.execute(
        "CREATE TEMP TABLE incoming ON COMMIT DROP AS "
        "SELECT DISTINCT ON (identity_hash) * FROM stage WHERE err IS NULL "
        "ORDER BY identity_hash, src_rank, row_no"
    )
    return cur.rowcount


def resolve(conn: psycopg.Connection, run_id: int, plan: SyncPlan, valid: int) -> Resolution:
    """Build `incoming`: one row per identity, quarantining duplicates and precedence losers.

    * The same identity twice in one source with different values: every such row is
      quarantined ('duplicate') and the identity is left untouched this run.
    * The same identity in two sources: the source listed first in the config wins; the other
      rows are recorded as 'conflict'.
    * With only some sources selected, an identity owned by an earlier-listed source that is
      not part of this run keeps its owner ('conflict').
    """
    conn.execute("ANALYZE stage")  # temp tables get no statistics otherwise
    incoming = _build_incoming(conn)
    duplicates = conflicts = 0
    if incoming < valid:
        duplicates = conn.execute(
            """INSERT INTO run_errors (run_id, source, row_no, kind, reason, identity_hash)
            SELECT %s, s.source, s.row_no, 'duplicate',
                'identity delivered ' || d.n || ' times by this source with different values '
                || '(rows ' || d.rows_list || '); left unchanged this run', s.identity_hash
            FROM stage s JOIN (
                SELECT src_rank, identity_hash, count(*) AS n,
                    string_agg(row_no::text, ', ' ORDER BY row_no) AS rows_list
                FROM stage WHERE err IS NULL GROUP BY src_rank, identity_hash
                HAVING count(DISTINCT row_hash) > 1
            ) d USING (src_rank, identity_hash)
            WHERE s.err IS NULL ORDER BY s.src_rank, s.row_no""",
            (run_id,),
        ).rowcount
        if duplicates:
            conn.execute(
                "DELETE FROM incoming WHERE identity_hash IN (SELECT identity_hash FROM run_errors "
                "WHERE run_id = %s AND kind = 'duplicate')", (run_id,))
        conflicts = conn.execute(
            """INSERT INTO run_errors (run_id, source, row_no, kind, reason, identity_hash)
            SELECT %s, s.source, s.row_no, 'conflict',
                'identity also delivered by source ' || quote_literal(i.source) || ' (row '
                || i.row_no || '), which is listed first and wins', s.identity_hash
            FROM stage s JOIN incoming i USING (identity_hash)
            WHERE s.err IS NULL AND s.src_rank > i.src_rank ORDER BY s.src_rank, s.row_no""",
            (run_id,),
        ).rowcount
    if plan.partial_selection:
        conflicts += conn.execute(
            """WITH lost AS (
                DELETE FROM incoming i USING features f
                WHERE f.identity_hash = i.identity_hash AND f.source <> i.source
                  AND NOT (f.source = ANY(%(run_sources)s))
                  AND coalesce(array_position(%(priority)s, f.source), 2147483647)
                      < array_position(%(priority)s, i.source)
                RETURNING i.source, i.row_no, i.identity_hash, f.source AS owner)
            INSERT INTO run_errors (run_id, source, row_no, kind, reason, identity_hash)
            SELECT %(run_id)s, source, row_no, 'conflict',
                'identity is owned by source ' || quote_literal(owner)
                || ', which is listed first and not part of this run', identity_hash
            FROM lost ORDER BY source, row_no""",
            {"run_sources": [s.name for s in plan.sources], "priority": list(plan.priority),
             "run_id": run_id},
        ).rowcount
    for rank, _cfg in enumerate(plan.sources if duplicates or conflicts else ()):
        conn.execute(
            f"""UPDATE run_errors e SET raw = to_jsonb(r) - '__row'
            FROM {quote_ident(f'raw_{rank}')} r
            WHERE e.run_id = %s AND e.source = %s AND e.raw IS NULL
              AND e.kind IN ('duplicate', 'conflict') AND r."__row" = e.row_no""",
            (run_id, _cfg.name),
        )
    if incoming < valid or plan.partial_selection:
        count = conn.execute("SELECT count(*) FROM incoming").fetchone()
        incoming = int(count[0]) if count else 0
    conn.execute("ANALYZE incoming")
    return Resolution(incoming=incoming, duplicates=duplicates,
                      conflicts=conflicts)


def diff(conn: psycopg.Connection, plan: SyncPlan) -> dict[str, int]:
    """Compute `delta`: creates and updates from `incoming`, deletes of full-mode sources."""
    conn.execute(
        """CREATE TEMP TABLE delta ON COMMIT DROP AS
        SELECT i.identity_hash, CASE WHEN f.identity_hash IS NULL THEN 'C' ELSE 'U' END AS op
        FROM incoming i LEFT JOIN features f USING (identity_hash)
        WHERE f.identity_hash IS NULL OR f.row_hash <> i.row_hash"""
    )
    if plan.full_sources:
        conn.execute(
            """INSERT INTO delta (identity_hash, op)
            SELECT f.identity_hash, 'D' FROM features f
            WHERE f.source = ANY(%s)
              -- any valid delivery protects a row, also a quarantined duplicate or a loser
              AND NOT EXISTS (SELECT 1 FROM stage s
                              WHERE s.identity_hash = f.identity_hash AND s.err IS NULL)""",
            (list(plan.full_sources),),
        )
    rows = conn.execute("SELECT op, count(*) FROM delta GROUP BY op").fetchall()
    return {str(op): int(n) for op, n in rows}


def apply(conn: psycopg.Connection, run_id: int) -> dict[str, int]:
    """Write `changes` for every row of `delta`, then bring `features` to the new state.

    `newrows` is built in identity order so that the index insertions that follow walk the
    primary key in order instead of at random.
    """
    cols = ", ".join(FEATURE_COLS)
    state = ", ".join(f"i.{c}" for c in STATE_FIELDS)
    conn.execute("CREATE TEMP TABLE newrows (LIKE features, op char(1)) ON COMMIT DROP")
    conn.execute(
        f"""INSERT INTO newrows ({cols}, op)
        SELECT i.identity_hash, i.row_hash, {state},
            coalesce(f.first_run_id, %(run)s), coalesce(f.first_seen_at, now()), %(run)s, now(),
            d.op
        FROM delta d JOIN incoming i USING (identity_hash)
        LEFT JOIN features f ON d.op = 'U' AND f.identity_hash = d.identity_hash
        WHERE d.op IN ('C', 'U')
        ORDER BY i.identity_hash""",
        {"run": run_id},
    )
    skip = ", ".join(f"'{c}'" for c in BOOKKEEPING)
    conn.execute(
        f"""INSERT INTO changes (run_id, identity_hash, feature_group, op, before_json, after_json,
                                 changed_fields, changed_at)
        SELECT %(run)s, x.identity_hash, x.feature_group, x.op, x.before_json, x.after_json,
            CASE WHEN x.op = 'U' THEN ARRAY(
                SELECT e.key FROM jsonb_each(x.after_json) e
                WHERE e.key NOT IN ({skip}) AND e.value IS DISTINCT FROM x.before_json -> e.key
                ORDER BY e.key) END,
            now()
        FROM (
            SELECT n.op, n.identity_hash, n.feature_group,
                CASE WHEN n.op = 'U' THEN to_jsonb(f) END AS before_json,
                to_jsonb(n) - 'op' AS after_json
            FROM newrows n
            LEFT JOIN features f ON n.op = 'U' AND f.identity_hash = n.identity_hash
            UNION ALL
            SELECT 'D', f.identity_hash, f.feature_group, to_jsonb(f), NULL
            FROM delta d JOIN features f USING (identity_hash) WHERE d.op = 'D'
        ) x""",
        {"run": run_id},
    )
    deleted = conn.execute(
        "DELETE FROM features f USING delta d WHERE d.op = 'D' AND f.identity_hash = d.identity_hash"
    ).rowcount
    sets = ", ".join(f"{c} = n.{c}" for c in FEATURE_COLS if c not in
                     ("identity_hash", "first_run_id", "first_seen_at"))
    updated = conn.execute(
        f"UPDATE features f SET {sets} FROM newrows n "
        "WHERE n.op = 'U' AND f.identity_hash = n.identity_hash"
    ).rowcount
    created = conn.execute(
        f"INSERT INTO features ({cols}) SELECT {cols} FROM newrows WHERE op = 'C'"
    ).rowcount
    return {"created": created, "updated": updated, "deleted": deleted}


def per_source_counts(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """created/updated/deleted per source; a delete counts for the source that owned the row.

    Must run before `apply` deletes rows from `features`.
    """
    rows = conn.execute(
        """SELECT coalesce(i.source, f.source), d.op, count(*)
        FROM delta d
        LEFT JOIN incoming i ON d.op <> 'D' AND i.identity_hash = d.identity_hash
        LEFT JOIN features f ON d.op = 'D' AND f.identity_hash = d.identity_hash
        GROUP BY 1, 2"""
    ).fetchall()
    names = {"C": "created", "U": "updated", "D": "deleted"}
    out: dict[str, dict[str, int]] = {}
    for source, op, n in rows:
        out.setdefault(str(source), {})[names[op]] = int(n)
    return out
