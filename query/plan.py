"""A request (`QuerySpec`) checked against one version's schema (`Prepared`), and the SQL
statements it becomes. Pure: no DuckDB here, so tests can assert on the SQL and its parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lake.layout import PARTITION_COLUMN, TABLES
from query.errors import BadCursor, BadValue, UnknownTable
from query.fields import TableSchema
from query.filters import Condition, Params, compile_filters, compile_search, ident, parse_filters
from query.paging import (
    CursorState,
    SortKey,
    check_values,
    fingerprint,
    keyset_predicate,
    order_sql,
    parse_order,
)
from query.scope import RowScope

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: The largest offset a request may give (DuckDB's OFFSET is a signed 64-bit number; no
#: snapshot comes near this many rows, so a larger one is a mistake or an attack).
MAX_OFFSET = 10**12
#: Request parameters that are not filters.
RESERVED = ("columns", "order", "limit", "offset", "cursor", "q")
_HIDDEN = "__k"
#: DuckDB's position of a row in its Parquet file (``read_parquet(..., file_row_number=true)``).
ROW_NUMBER = "file_row_number"


@dataclass(frozen=True)
class QuerySpec:
    """What a caller asks for, as the API receives it (text, unvalidated).

    `feature_group` is the path parameter: a filter that also limits reading to that partition.
    `limit=None` means `DEFAULT_LIMIT` for a page and "all rows" for a stream.
    """

    table: str = "features"
    feature_group: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    q: str | None = None
    columns: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    limit: int | None = None
    offset: int = 0
    cursor: str | None = None
    #: The caller's row scope (None: every row). Set by the server from the caller's identity,
    #: never from request parameters.
    scope: RowScope | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]],
                    *, table: str = "features", feature_group: str | None = None,
                    ignore: Iterable[str] = ()) -> QuerySpec:
        """Build a spec from query-string parameters (a mapping, or pairs; repeats allowed).

        `columns`, `order`, `limit`, `offset`, `cursor` and `q` are taken out; keys in `ignore`
        (e.g. the API's own `format`) are dropped; every other pair is a filter.

        Raises:
            BadValue: a reserved parameter repeated or not a number where one is needed.
        """
        items = params.items() if isinstance(params, Mapping) else params
        pairs: list[tuple[str, str]] = []
        for key, value in items:
            values = [value] if isinstance(value, str) else list(value)
            pairs.extend((key, v) for v in values)
        skip = set(ignore)
        reserved: dict[str, str] = {}
        filters = []
        for key, value in pairs:
            if key in skip:
                continue
            if key in RESERVED:
                if key in reserved:
                    raise BadValue(key, value, "given more than once")
                reserved[key] = value
            else:
                filters.append((key, value))
        return cls(
            table=table, feature_group=feature_group, filters=tuple(filters),
            q=reserved.get("q"),
            columns=_csv(reserved.get("columns")), order=_csv(reserved.get("order")),
            limit=_int("limit", reserved.get("limit")),
            offset=_int("offset", reserved.get("offset")) or 0,
            cursor=reserved.get("cursor") or None,
        )


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",")) if text else ()


def _int(name: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if len(text) > 20:  # int() of a huge text is itself slow; no valid value is this long
        raise BadValue(name, text[:20] + "...", "not a whole number of at most 20 digits")
    try:
        return int(text)
    except ValueError:
        raise BadValue(name, text, "not a whole number") from None


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Prepared:
    """A spec validated against one version: every name resolved, every value typed."""

    version: int
    table: str
    group: str | None
    files: tuple[str, ...]
    schema: TableSchema
    conditions: tuple[Condition, ...]
    q: str | None
    columns: tuple[str, ...]
    keys: tuple[SortKey, ...]
    limit: int | None
    offset: int
    after: tuple[Any, ...] | None
    fingerprint: str
    scope: RowScope | None = None

    def _scope(self, params: Params, *, keyset: bool = True, row_numbers: bool = False) -> str:
        """``FROM ... WHERE ...`` with this query's filters (values added to `params`)."""
        preds = compile_filters(self.conditions, self.schema, params)
        if self.scope is not None:
            allowed = self.scope.predicate(self.table, params)
            if allowed is not None:
                preds.insert(0, allowed)
        if self.group is not None:
            preds.insert(0, f"{ident(PARTITION_COLUMN)} = {params.add(self.group)}")
        search = compile_search(self.q, self.schema, params)
        if search:
            preds.append(search)
        if keyset and self.after is not None:
            preds.append(keyset_predicate(self.keys, self.after, params))
        where = " WHERE " + " AND ".join(preds) if preds else ""
        source = source_sql(self.table, self.files, params, self.schema,
                            row_numbers=row_numbers)
        return f" FROM {source} AS t{where}"

    def _select(self) -> str:
        return ", ".join(ident(c) for c in self.columns)

    @property
    def in_file_order(self) -> bool:
        """Default-ordered features: sorted by (group, row number in its file), see `prepare`."""
        return any(k.column == ROW_NUMBER for k in self.keys)

    def page(self, select: str | None = None) -> Statement:
        """One page, with one extra row (to know whether there is a next page) and the sort
        values as hidden columns ``__k0``, ``__k1``, ... for the next cursor.

        With `select` (an expression over the columns, e.g. a JSON line), the page's rows are
        that expression as ``line`` (plus the hidden columns), computed only for the page's
        rows: in one SELECT, DuckDB would compute it for every matching row before the limit.
        """
        st = self._page()
        if select is None:
            return st
        hidden = [SortKey(f"{_HIDDEN}{i}", k.descending) for i, k in enumerate(self.keys)]
        keys = ", ".join(ident(k.column) for k in hidden)
        return Statement(f"SELECT {select} AS line, {keys} FROM ({st.sql}) AS pg "
                         f"ORDER BY {order_sql(hidden)}", st.params)

    def _page(self) -> Statement:
        p = Params()
        hidden = ", ".join(f"{ident(k.column)} AS {_HIDDEN}{i}" for i, k in enumerate(self.keys))
        scope = self._scope(p, row_numbers=self.in_file_order)
        limit = p.add((self.limit or DEFAULT_LIMIT) + 1)
        offset = p.add(self.offset)
        order = order_sql(self.keys)
        if self.in_file_order and not self.conditions and not (self.q or "").strip():
            # Unfiltered listing (a row scope's predicate stays in `scope`): find the page's (group, row number) first, then read only
            # those rows' columns; DuckDB would otherwise decode every column of every row
            # (a million-row first page: ~100 ms instead of ~10 ms).
            g, r = ident(PARTITION_COLUMN), ident(ROW_NUMBER)
            rows = source_sql(self.table, self.files, p, self.schema, row_numbers=True)
            sql = (f"WITH k AS (SELECT {g} AS g, {r} AS r{scope} ORDER BY {order} "
                   f"LIMIT {limit} OFFSET {offset}) "
                   f"SELECT {self._select()}, {hidden} FROM {rows} AS t "
                   f"SEMI JOIN k ON t.{g} = k.g AND t.{r} = k.r ORDER BY {order}")
            return Statement(sql, p.values)
        sql = (f"SELECT {self._select()}, {hidden}{scope} ORDER BY {order}"
               f" LIMIT {limit} OFFSET {offset}")
        return Statement(sql, p.values)

    def count(self) -> Statement:
        p = Params()
        return Statement(f"SELECT count(*) AS n{self._scope(p, keyset=False)}", p.values)

    def stream(self, select: str | None = None) -> Statement:
        """All matching rows (or `limit`), as the columns or as the `select` list given (an
        expression over the columns, e.g. CSV lines), in the same order as the pages. The
        order is always explicit: DuckDB does not promise scan order for every plan."""
        p = Params()
        scope = self._scope(p, row_numbers=self.in_file_order)
        sql = f"SELECT {select or self._select()}{scope} ORDER BY {order_sql(self.keys)}"
        if self.limit is not None or self.offset:
            sql += f" LIMIT {p.add(self.limit if self.limit is not None else 2**62)}"
            sql += f" OFFSET {p.add(self.offset)}"
        return Statement(sql, p.values)

    def facet(self, column: str, top: int) -> Statement:
        """Counts per value of `column` under this query's filters, most frequent first."""
        col = ident(self.schema.column(column).name)
        p = Params()
        scope = self._scope(p, keyset=False)
        sql = (f"SELECT {col} AS value, count(*) AS n{scope} GROUP BY ALL "
               f"ORDER BY n DESC, value ASC NULLS LAST LIMIT {p.add(top)}")
        return Statement(sql, p.values)


def source_sql(table: str, files: Sequence[str], params: Params,
               schema: TableSchema | None, *, row_numbers: bool = False) -> str:
    """The relation a table's files make, as a FROM item (`row_numbers`: with each row's
    position in its file as ``file_row_number``)."""
    if not files:  # an empty table has no files: an empty relation of the right shape
        cols = ", ".join(f"CAST(NULL AS {c.type}) AS {ident(c.name)}"
                         for c in (schema.columns if schema else ()))
        return f"(SELECT {cols or 'NULL AS empty'} LIMIT 0)"
    marks = params.add(list(files))
    extra = f", {ROW_NUMBER} = true" if row_numbers else ""
    if table == "features":
        return (f"read_parquet({marks}, hive_partitioning = true, "
                f"hive_types = {{'{PARTITION_COLUMN}': 'VARCHAR'}}{extra})")
    return f"read_parquet({marks}, hive_partitioning = false{extra})"


def source_statement(table: str, files: Sequence[str], *,
                     schema: TableSchema | None = None) -> Statement:
    """The relation a table's files make (as a FROM item), with the file list as parameter."""
    p = Params()
    return Statement(source_sql(table, files, p, schema), p.values)


def prepare(spec: QuerySpec, *, version: int, files: Sequence[str], schema: TableSchema,
            cursor: CursorState | None = None, page: bool = True) -> Prepared:
    """Check `spec` against the schema of `version` and type its values.

    Args:
        page: a page (limit defaults to `DEFAULT_LIMIT`, at most `MAX_LIMIT`) or a stream.
        cursor: the decoded cursor of the request, if any.

    Raises:
        UnknownTable, UnknownField, UnknownOperator, BadValue, BadCursor.
    """
    if spec.table not in TABLES:
        raise UnknownTable(spec.table, TABLES)
    if spec.scope is not None:
        spec.scope.predicate(spec.table, Params())  # OutOfScope before anything else
    conds = parse_filters(spec.filters)
    compile_filters(conds, schema, Params())  # validate now, not on first use
    compile_search(spec.q, schema, Params())
    columns: list[str] = []
    for name in spec.columns or schema.names:
        real = schema.column(name).name
        if real in columns:
            raise BadValue("columns", ",".join(spec.columns), f"{real} is named twice")
        columns.append(real)
    if not any(s.strip() for s in spec.order) and spec.table == "features" and files:
        # The writer sorts each group's file by (feature_name, mcc, mnc) in byte order (see
        # lake.layout), so (group, row number in the file) is the default order, and far
        # cheaper to sort by and to page through than the names themselves. Ties keep their
        # order in the file. A cursor pins its version, so row numbers stay meaningful.
        keys: tuple[SortKey, ...] = (SortKey(PARTITION_COLUMN), SortKey(ROW_NUMBER))
    else:
        keys = parse_order(spec.order, schema)
    limit = spec.limit
    if limit is not None and not (1 <= limit <= (MAX_LIMIT if page else 2**62)):
        raise BadValue("limit", limit, f"must be between 1 and {MAX_LIMIT}")
    if not 0 <= spec.offset <= MAX_OFFSET:
        raise BadValue("offset", spec.offset, f"must be between 0 and {MAX_OFFSET}")
    fp = fingerprint(spec.table, spec.feature_group, sorted(spec.filters), spec.q or "",
                     [k.spec for k in keys], *([spec.scope.key] if spec.scope else []))
    after = None
    if cursor is not None:
        if spec.offset:
            raise BadValue("offset", spec.offset, "cannot be combined with a cursor")
        if cursor.fingerprint != fp:
            raise BadCursor("it belongs to another query (filters, search or order differ)")
        if cursor.version != version:
            raise BadCursor(f"it belongs to snapshot v{cursor.version:06d}, "
                            f"not v{version:06d}")
        kinds = ["integer" if k.column == ROW_NUMBER else schema.column(k.column).kind
                 for k in keys]
        check_values(keys, cursor.values, kinds)
        after = cursor.values
    return Prepared(
        version=version, table=spec.table, group=spec.feature_group, files=tuple(files),
        schema=schema, conditions=conds, q=spec.q, columns=tuple(columns), keys=keys,
        limit=limit, offset=spec.offset, after=after, fingerprint=fp, scope=spec.scope,
    )
