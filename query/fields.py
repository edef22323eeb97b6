"""What each snapshot table offers a query: typed columns, aliases, key, default order, search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from query.errors import UnknownField

Kind = Literal["text", "integer", "number", "timestamp", "date", "bool", "list", "other"]

#: Friendlier names the API accepts for some columns.
ALIASES: dict[str, dict[str, str]] = {
    "features": {"updated_at": "last_changed_at", "name": "feature_name"},
    "changes": {"updated_at": "changed_at"},
}
#: Columns that identify a row: the tie-breaker that makes every order total (keyset paging).
KEYS: dict[str, tuple[str, ...]] = {
    "features": ("identity_hash",),
    "changes": ("id",),
    "runs": ("id",),
    "daily_counts": ("day",),
    "name_map": ("kind", "alias_key"),
    "mcc_mnc_map": ("id",),
}
#: Order when the request names none ("-x" = descending). Features follow the file sort order.
DEFAULT_ORDER: dict[str, tuple[str, ...]] = {
    "features": ("feature_group", "feature_name", "mcc", "mnc"),
    "changes": ("-id",),
    "runs": ("-id",),
    "daily_counts": ("-day",),
    "name_map": ("kind", "alias_key"),
    "mcc_mnc_map": ("mcc", "mnc", "id"),
}
#: Columns the free-text search `q=` looks in.
SEARCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "features": ("feature_name", "value", "notes", "operator"),
    "changes": ("feature_group", "before_json", "after_json"),
    "runs": ("trigger", "status", "error_summary"),
    "name_map": ("alias", "canonical"),
    "mcc_mnc_map": ("country", "operator", "brand"),
}
#: Columns holding JSON text (encoders may embed them as JSON values rather than strings).
JSON_COLUMNS: frozenset[str] = frozenset(
    {"attrs", "before_json", "after_json", "source_stats", "phase_seconds"})

_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT")


def kind_of(duckdb_type: str) -> Kind:
    """Classify a DuckDB type name (as DESCRIBE prints it)."""
    t = duckdb_type.upper()
    if t.endswith("]"):
        return "list"
    if t in ("VARCHAR", "JSON") or t.startswith("VARCHAR"):
        return "text"
    if t in _INTEGER:
        return "integer"
    if t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        return "number"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if t == "DATE":
        return "date"
    if t == "BOOLEAN":
        return "bool"
    return "other"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type name
    kind: Kind


@dataclass(frozen=True)
class TableSchema:
    """The columns of one table in one snapshot version."""

    table: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every name a request may use: the columns and their aliases."""
        aliases = [a for a, target in ALIASES.get(self.table, {}).items() if target in self.names]
        return self.names + tuple(aliases)

    def column(self, name: str) -> Column:
        """The column a (possibly aliased) name refers to.

        Raises:
            UnknownField: listing the valid names.
        """
        real = ALIASES.get(self.table, {}).get(name, name)
        for c in self.columns:
            if c.name == real:
                return c
        raise UnknownField(name, self.accepted, table=self.table)

    @property
    def key(self) -> tuple[str, ...]:
        """The row identity used as the last sort key (all columns if the key is absent)."""
        key = tuple(k for k in KEYS.get(self.table, ()) if k in self.names)
        return key or tuple(c.name for c in self.columns if c.kind not in ("list", "other"))

    @property
    def default_order(self) -> tuple[str, ...]:
        return tuple(o for o in DEFAULT_ORDER.get(self.table, ())
                     if o.lstrip("-") in self.names)

    @property
    def search_columns(self) -> tuple[str, ...]:
        return tuple(c for c in SEARCH_COLUMNS.get(self.table, ()) if c in self.names)


_ARROW_TO_DUCKDB = (
    ("large_string", "VARCHAR"), ("string", "VARCHAR"), ("utf8", "VARCHAR"),
    ("int64", "BIGINT"), ("int32", "INTEGER"), ("int16", "SMALLINT"), ("int8", "TINYINT"),
    ("double", "DOUBLE"), ("float", "FLOAT"), ("bool", "BOOLEAN"), ("date32", "DATE"),
)


def duckdb_type_of_arrow(arrow_type: str) -> str:
    """A DuckDB type for an Arrow type as the manifest writes it (``str(pa.DataType)``); used
    only to give an empty table (no files) its columns. Unknown types become VARCHAR."""
    t = arrow_type.strip()
    if t.startswith(("list<", "large_list<")):
        inner = t[t.index("<") + 1:-1].split(":", 1)[-1]
        return duckdb_type_of_arrow(inner) + "[]"
    if t.startswith("timestamp"):
        return "TIMESTAMP WITH TIME ZONE" if "tz=" in t else "TIMESTAMP"
    for prefix, duck in _ARROW_TO_DUCKDB:
        if t.startswith(prefix):
            return duck
    return "VARCHAR"
