"""The columns of a snapshot table, and the SELECT a catalog view of it is made of."""

from __future__ import annotations

import duckdb

from lake.layout import PARTITION_COLUMN
from query.fields import Column, TableSchema, duckdb_type_of_arrow, kind_of
from query.filters import ident
from query.plan import source_statement
from query.snapshot import Snapshot


def describe(cur: duckdb.DuckDBPyConnection, snap: Snapshot, table: str) -> TableSchema:
    """A table's columns as DuckDB reads its files (the manifest's types when it has none).

    Only the manifest's columns are kept: DuckDB also turns any ``k=v`` folder above the
    snapshots (e.g. ``/srv/env=prod/``) into a column of a hive-partitioned read.
    """
    files = snap.files(table)
    info = snap.manifest.tables.get(table)
    pairs = list(info.columns) if info else []
    if table == "features":
        pairs.append((PARTITION_COLUMN, "string"))
    if files:
        st = source_statement(table, files)
        rows = cur.sql(f"DESCRIBE SELECT * FROM {st.sql}", params=st.params).fetchall()
        listed = {name for name, _ in pairs}
        cols = [Column(str(r[0]), str(r[1]), kind_of(str(r[1]))) for r in rows
                if not listed or str(r[0]) in listed]
    else:
        cols = [Column(n, t, kind_of(t)) for n, t in
                ((n, duckdb_type_of_arrow(a)) for n, a in pairs)]
    return TableSchema(table, _group_first(cols))


def _group_first(cols: list[Column]) -> tuple[Column, ...]:
    """Features: put feature_group (last, from the folder name) before feature_name."""
    names = [c.name for c in cols]
    if PARTITION_COLUMN not in names or "feature_name" not in names:
        return tuple(cols)
    group = cols[names.index(PARTITION_COLUMN)]
    rest = [c for c in cols if c.name != PARTITION_COLUMN]
    i = [c.name for c in rest].index("feature_name")
    return tuple(rest[:i] + [group] + rest[i:])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_select(snap: Snapshot, table: str, schema: TableSchema) -> str:
    """A SELECT of the table's columns over its files, the paths written as literals: a view
    definition cannot take parameters (the paths come from the manifest, not a request)."""
    st = source_statement(table, snap.files(table), schema=schema)
    sql = st.sql
    for name, value in st.params.items():
        sql = sql.replace(f"${name}", "[" + ", ".join(_literal(v) for v in value) + "]")
    return f"SELECT {', '.join(ident(c) for c in schema.names)} FROM {sql}"
