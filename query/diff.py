"""What changed in `features` between two snapshot versions (for the UI's History page).

A full outer join on identity_hash: only in the newer version = added, only in the older =
removed, in both with a different row_hash = changed, with the names of the columns that differ.
"""

from __future__ import annotations

import duckdb

from query.errors import BadValue, UnknownGroup
from query.fields import TableSchema
from query.filters import Params, ident
from query.plan import source_sql
from query.results import Diff
from query.scope import RowScope
from query.snapshot import Snapshot

#: Bookkeeping columns that change with every write and are not the row's content.
NOT_COMPARED = frozenset({"identity_hash", "row_hash", "first_run_id", "first_seen_at",
                          "last_run_id", "last_changed_at"})
SHOWN = ("feature_group", "feature_name", "mcc", "mnc")
MAX_DIFF_ROWS = 100_000


def _files(snap: Snapshot, group: str | None) -> list[str]:
    try:
        return snap.files("features", group)
    except UnknownGroup:
        return []  # the group does not exist on this side: everything there is added/removed


def diff_sql(old_files: list[str], new_files: list[str], old: TableSchema, new: TableSchema,
             group: str | None, params: Params, *, scope: RowScope | None = None) -> str:
    """A query over (change, identity_hash, group, name, mcc, mnc, changed_fields, before_json,
    after_json) of the rows that differ."""
    common = [c for c in old.names if c in new.names]
    compared = [c for c in common if c not in NOT_COMPARED]
    a_src = source_sql("features", old_files, params, old)
    b_src = source_sql("features", new_files, params, new)
    preds = []
    if group is not None:
        preds.append(f"feature_group = {params.add(group)}")
    allowed = scope.predicate("features", params) if scope is not None else None
    if allowed is not None:
        preds.append(allowed)
    where = " WHERE " + " AND ".join(preds) if preds else ""
    checks = ", ".join(
        f"CASE WHEN a.{ident(c)} IS DISTINCT FROM b.{ident(c)} THEN {_lit(c)} END"
        for c in compared) or "NULL"
    shown = ", ".join(f"coalesce(b.{ident(c)}, a.{ident(c)}) AS {ident(c)}"
                      for c in SHOWN if c in common)
    a_cols = ", ".join(ident(c) for c in old.names)
    b_cols = ", ".join(ident(c) for c in new.names)
    return (
        f"WITH a AS (SELECT {a_cols} FROM {a_src} AS t{where}), "
        f"b AS (SELECT {b_cols} FROM {b_src} AS t{where}) "
        "SELECT CASE WHEN a.identity_hash IS NULL THEN 'added' "
        "WHEN b.identity_hash IS NULL THEN 'removed' ELSE 'changed' END AS change, "
        f"coalesce(b.identity_hash, a.identity_hash) AS identity_hash, {shown}, "
        "CASE WHEN a.identity_hash IS NOT NULL AND b.identity_hash IS NOT NULL "
        f"THEN list_filter([{checks}], lambda x: x IS NOT NULL) END AS changed_fields, "
        "CASE WHEN a.identity_hash IS NOT NULL THEN to_json(a) END AS before_json, "
        "CASE WHEN b.identity_hash IS NOT NULL THEN to_json(b) END AS after_json "
        "FROM a FULL OUTER JOIN b ON a.identity_hash = b.identity_hash "
        "WHERE a.identity_hash IS NULL OR b.identity_hash IS NULL "
        "OR a.row_hash IS DISTINCT FROM b.row_hash"
    )


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def diff_versions(cur: duckdb.DuckDBPyConnection, old: Snapshot, new: Snapshot,
                  old_schema: TableSchema, new_schema: TableSchema, *,
                  feature_group: str | None = None, limit: int = 1000, offset: int = 0,
                  scope: RowScope | None = None) -> Diff:
    """Counts of added/removed/changed features and up to `limit` of those rows, ordered by
    group, name, mcc, mnc.

    With `scope`, both sides are read through it: a row that left the scope is "removed",
    one that entered it "added"; nothing out of scope is shown or counted.

    Raises:
        BadValue: limit/offset out of range; UnknownGroup: the group is in neither version
            (or not in the scope).
    """
    if not 0 <= limit <= MAX_DIFF_ROWS:
        raise BadValue("limit", limit, f"must be between 0 and {MAX_DIFF_ROWS}")
    if offset < 0:
        raise BadValue("offset", offset, "must not be negative")
    known = sorted(old.groups() | new.groups())
    if scope is not None:
        known = scope.visible_groups(known)
    if feature_group is not None and feature_group not in known:
        raise UnknownGroup(feature_group, known)
    old_files, new_files = _files(old, feature_group), _files(new, feature_group)

    p = Params()
    body = diff_sql(old_files, new_files, old_schema, new_schema, feature_group, p,
                    scope=scope)
    counts = dict.fromkeys(("added", "removed", "changed"), 0)
    for change, n in cur.sql(f"SELECT change, count(*) FROM ({body}) GROUP BY change",
                             params=p.values).fetchall():
        counts[str(change)] = int(n)

    p = Params()
    body = diff_sql(old_files, new_files, old_schema, new_schema, feature_group, p,
                    scope=scope)
    order = ", ".join(ident(c) for c in (*SHOWN, "identity_hash")
                      if c in old_schema.names and c in new_schema.names)
    rows = cur.sql(f"SELECT * FROM ({body}) ORDER BY {order} NULLS LAST "
                   f"LIMIT {p.add(limit)} OFFSET {p.add(offset)}", params=p.values
                   ).to_arrow_table()
    return Diff(old.version, new.version, counts["added"], counts["removed"], counts["changed"],
                rows)
