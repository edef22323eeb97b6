"""The one query API over published snapshots, shared by the HTTP API, the UI and the CLI.

One in-memory DuckDB database per `Engine`; each thread gets its own cursor (``con.cursor()``),
so a multi-threaded server can share one engine. Every call resolves the version first (the
current one via CURRENT.json, cheap when unchanged) and reads only that version's files, so a
result always comes from one whole version and a new publish is seen by the next call. DuckDB
can read files only inside the snapshots folder, and its configuration is locked.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from fmw.settings import Settings
from lake.layout import PARTITION_COLUMN, TABLES, SnapshotError, version_name
from query import analyst, diff, textrows, xlsxrows
from query.encoders import CONTENT_TYPES, encode
from query.errors import (
    BadCursor,
    BadValue,
    ExportError,
    QueryError,
    UnknownGroup,
    UnknownTable,
    UnknownVersion,
)
from query.fields import JSON_COLUMNS, TableSchema
from query.paging import CursorState, decode_cursor, encode_cursor
from query.plan import DEFAULT_LIMIT, Prepared, QuerySpec, Statement, prepare
from query.results import (
    Diff,
    Export,
    Facet,
    Facets,
    FacetValue,
    Result,
    SqlResult,
    Stream,
    TextPage,
    VersionInfo,
)
from query.schemas import describe, view_select
from query.scope import SCOPED_TABLES, RowScope
from query.snapshot import Resolver, Snapshot, SnapshotReadError
from query.streams import open_stream

# `_arrow` copies a page once more than `cur.sql(...).to_arrow_table()` would (DuckDB warns);
# the extra bind of `cur.sql` costs more than copying a page of at most MAX_LIMIT rows.
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning,
                        module=r"query\.engine")

BATCH_ROWS = 65_536
#: Formats whose rows DuckDB writes as text lines (see `query.textrows`).
TEXT_FORMATS = ("csv", "json", "ndjson")
MAX_FACET_TOP = 1000


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(root: Path, *, threads: int, memory_limit: str,
            temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read files only under `root`, configuration locked.

    `temp_dir` is where a sort bigger than `memory_limit` spills (default: ``.tmp`` in the
    working directory, which for a service may be anywhere)."""
    con = duckdb.connect(":memory:", config={
        "threads": threads, "memory_limit": memory_limit,
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
    })
    # These must be set after start-up, in this order, before the lock.
    allowed = str(root).rstrip(os.sep) + os.sep
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    con.execute("SET GLOBAL parquet_metadata_cache = true")  # version files never change
    if temp_dir is not None:
        con.execute(f"SET GLOBAL temp_directory = {_literal(str(temp_dir))}")
    con.execute(f"SET GLOBAL allowed_directories = [{_literal(allowed)}]")
    con.execute("SET GLOBAL enable_external_access = false")
    con.execute("SET GLOBAL lock_configuration = true")
    return con


class Engine:
    """Read-only queries over the snapshots in ``settings.snapshots_path``.

    Args:
        settings: `snapshots_path`, `duckdb_threads`, `duckdb_memory_limit` and `data_dir`
            (big sorts spill to ``data_dir/tmp/duckdb``) are used.
        check: verify every version's checksums before first use (falls back when damaged).
    """

    def __init__(self, settings: Settings, *, check: bool = True) -> None:
        self.root = settings.snapshots_path.expanduser().resolve()
        self.threads = settings.duckdb_threads
        self.resolver = Resolver(self.root, check=check)
        self._con = connect(self.root, threads=settings.duckdb_threads,
                            memory_limit=settings.duckdb_memory_limit,
                            temp_dir=settings.data_dir / "tmp" / "duckdb")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._schemas: dict[tuple[int, str], TableSchema] = {}
        self._views: set[int] = set()
        self._scoped_groups: dict[tuple[int, str], dict[str, int]] = {}
        self._scoped_views: set[tuple[int, str]] = set()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()

    def close(self) -> None:
        """Close every thread's cursor and the database (open streams stop working)."""
        with self._cursors_lock:
            cursors, self._cursors = self._cursors, []
        for cur in cursors:
            cur.close()
        self._con.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- versions ----------------------------------------------------------------------------

    def snapshot(self, version: int | None = None, as_of: date | datetime | None = None
                 ) -> Snapshot:
        """The current snapshot, a pinned `version`, or the one valid `as_of` a date/time.

        Raises:
            NoSnapshot, UnknownVersion, CorruptSnapshot.
        """
        if version is not None and as_of is not None:
            raise BadValue("version", version, "give version or as_of, not both")
        if version is not None:
            return self.resolver.pinned(version)
        if as_of is not None:
            return self.resolver.as_of(as_of)
        return self.resolver.current()

    def versions(self) -> list[VersionInfo]:
        """Every kept version, newest first."""
        try:
            current: int | None = self.resolver.current().version
        except QueryError:  # listing still works without a usable current version
            current = None
        out = []
        for v in reversed(self.resolver.versions()):
            try:
                m = self.resolver.manifest(v)
            except SnapshotError:  # damaged, or deleted by retention meanwhile
                continue
            rows = m.tables["features"].rows if "features" in m.tables else 0
            out.append(VersionInfo(v, version_name(v), m.created_at, m.run_id, rows,
                                   v == current))
        return out

    def groups(self, *, version: int | None = None, as_of: date | datetime | None = None,
               scope: RowScope | None = None) -> dict[str, int]:
        """Feature groups and their row counts (with `scope`: the groups and rows in it)."""
        snap = self.snapshot(version, as_of)
        if scope is None:
            return snap.groups()
        return self.scoped_groups(snap, scope)

    def scoped_groups(self, snap: Snapshot, scope: RowScope) -> dict[str, int]:
        """The groups of `snap` with rows in `scope`, and how many (cached per version)."""
        key = (snap.version, scope.key)
        cached = self._scoped_groups.get(key)
        if cached is not None:
            return cached
        names = scope.visible_groups(sorted(snap.groups()))
        counts: dict[str, int] = {}
        if names:
            spec = QuerySpec(scope=scope)
            _, prep = self._prepare(spec, snap.version, None, page=True)
            st = prep.facet(PARTITION_COLUMN, len(names))  # counts per group, in scope
            with self._reading(snap):
                for g, n in self._cursor().execute(st.sql, st.params).fetchall():
                    counts[str(g)] = int(n)
        out = {g: counts[g] for g in names if counts.get(g)}
        if len(self._scoped_groups) > 256:
            self._scoped_groups.clear()
        self._scoped_groups[key] = out
        return out

    def schema(self, table: str = "features", *, version: int | None = None,
               as_of: date | datetime | None = None) -> TableSchema:
        """The columns (name, DuckDB type, kind) of a table."""
        return self._schema(self.snapshot(version, as_of), table)

    # -- queries -----------------------------------------------------------------------------

    def query(self, spec: QuerySpec | None = None, *, version: int | None = None,
              as_of: date | datetime | None = None, count: bool = True) -> Result:
        """One page of rows, the total count and the cursor of the next page.

        Raises:
            UnknownTable, UnknownField, UnknownOperator, BadValue, BadCursor, UnknownGroup,
            UnknownVersion, NoSnapshot, CorruptSnapshot.
        """
        snap, prep = self._prepare(spec or QuerySpec(), version, as_of, page=True)
        cur = self._cursor()
        with self._reading(snap):
            table, next_cursor = self._page(cur, snap, prep, None)
            total = self._total(cur, prep, table.num_rows, next_cursor) if count else None
        return Result(snap.version, prep.table, prep.columns, table.select(list(prep.columns)),
                      total, next_cursor, snap.fallback)

    def page_text(self, spec: QuerySpec | None, fmt: str, *, version: int | None = None,
                  as_of: date | datetime | None = None, bom: bool = False,
                  neutralise: bool = False) -> TextPage:
        """One page (as `query`) encoded as csv, json or ndjson, with its total.

        The text is made inside the page's own query, only for the page's rows: the same bytes
        `export` gives for those rows, without a round trip through Arrow values. This is the
        API's JSON page: one statement, a second (the count) only when the page has a next one
        or lies past the end, and no Python per row.
        """
        if fmt not in TEXT_FORMATS:
            raise ExportError(fmt, f"a page as text is one of {', '.join(TEXT_FORMATS)}")
        snap, prep = self._prepare(spec or QuerySpec(), version, as_of, page=True)
        cur = self._cursor()
        with self._reading(snap):
            table, next_cursor = self._page(cur, snap, prep, _line_sql(prep, fmt, neutralise))
            total = self._total(cur, prep, table.num_rows, next_cursor)
        batches = table.select(["line"]).to_batches()
        if fmt == "csv":
            chunks = textrows.encode_csv_lines(iter(batches), prep.columns, bom=bom)
        else:
            chunks = textrows.encode_json_lines(iter(batches), array=fmt == "json")
        return TextPage(snap.version, prep.table, fmt, prep.columns, b"".join(chunks),
                        table.num_rows, total, next_cursor, snap.fallback)

    def _total(self, cur: duckdb.DuckDBPyConnection, prep: Prepared, rows: int,
               next_cursor: str | None) -> int:
        """Every row matching the filters. A last page reached by offset alone already tells
        (offset + its rows): most narrow queries fit one page, and then need no count."""
        if next_cursor is None and prep.after is None and (rows or not prep.offset):
            return prep.offset + rows
        return self._scalar(cur, prep.count())

    def _page(self, cur: duckdb.DuckDBPyConnection, snap: Snapshot, prep: Prepared,
              select: str | None) -> tuple[pa.Table, str | None]:
        """The page's rows (at most the limit) and the next page's cursor."""
        st = prep.page(select)
        table = _arrow(cur, st)
        limit = prep.limit if prep.limit is not None else DEFAULT_LIMIT
        next_cursor = None
        if table.num_rows > limit:
            last = limit - 1
            values = tuple(table.column(f"__k{i}")[last].as_py() for i in range(len(prep.keys)))
            next_cursor = encode_cursor(CursorState(snap.version, prep.fingerprint, values))
            table = table.slice(0, limit)
        return table, next_cursor

    def count(self, spec: QuerySpec | None = None, *, version: int | None = None,
              as_of: date | datetime | None = None) -> int:
        snap, prep = self._prepare(spec or QuerySpec(), version, as_of, page=True)
        with self._reading(snap):
            return self._scalar(self._cursor(), prep.count())

    def stream(self, spec: QuerySpec | None = None, *, version: int | None = None,
               as_of: date | datetime | None = None, batch_rows: int = BATCH_ROWS) -> Stream:
        """Every matching row (or `spec.limit`) as a lazily read Arrow stream."""
        return self._stream(spec or QuerySpec(), version, as_of, batch_rows)

    def _stream(self, spec: QuerySpec, version: int | None, as_of: date | datetime | None,
                batch_rows: int, *, lines: str | None = None, neutralise: bool = False,
                tz: str | None = None) -> Stream:
        """A stream of the rows, or of their text `lines` ("csv", "json", "ndjson", "xlsx")."""
        snap, prep = self._prepare(spec, version, as_of, page=False)
        select = None if lines is None else _line_sql(prep, lines, neutralise, tz) + " AS line"
        with self._reading(snap):
            reader, close = open_stream(self._con, prep, select, batch_rows=batch_rows,
                                        workers=self.threads)
        reader = pa.RecordBatchReader.from_batches(reader.schema, self._guarded(snap, reader))
        return Stream(snap.version, prep.table, prep.columns, reader, snap.fallback, close)

    def export(self, spec: QuerySpec, fmt: str, *, version: int | None = None,
               as_of: date | datetime | None = None, bom: bool = False,
               neutralise: bool = False, tz: str | None = None) -> Export:
        """Matching rows encoded as csv, json, ndjson, parquet or xlsx, as bytes chunks.

        CSV, JSON and XLSX rows are made by DuckDB inside the query (all threads); Parquet
        encodes the Arrow batches. See `query.textrows`, `query.xlsxrows` and `query.encoders`.
        With `tz` (an IANA zone), CSV and XLSX time stamps are that zone's wall clock and
        their headers name it. An XLSX export first counts and measures its rows (one more
        scan), for the sheet's dimension and column widths.
        """
        if fmt not in CONTENT_TYPES:
            raise ExportError(fmt, f"unknown format; valid: {', '.join(CONTENT_TYPES)}")
        text = fmt in TEXT_FORMATS or fmt == "xlsx"
        tz = tz if fmt in ("csv", "xlsx") else None
        stream = self._stream(spec, version, as_of, BATCH_ROWS, lines=fmt if text else None,
                              neutralise=neutralise, tz=tz)
        try:
            if fmt in ("csv", "xlsx"):
                snap, prep = self._prepare(spec, stream.version, None, page=False)
                types = [prep.schema.column(c).type for c in prep.columns]
                headers = [textrows.zone_label(c, t, tz) for c, t in zip(prep.columns, types,
                                                                          strict=True)]
            if fmt == "csv":
                chunks = textrows.encode_csv_lines(stream.reader, headers, bom=bom)
            elif fmt == "xlsx":
                with self._reading(snap):
                    rows, widths = self._xlsx_layout(prep, headers, types)
                chunks = xlsxrows.encode_xlsx_lines(stream.reader, headers, rows=rows,
                                                    widths=widths)
            elif text:
                chunks = textrows.encode_json_lines(stream.reader, array=fmt == "json")
            else:
                chunks = encode(stream.reader, fmt, neutralise=neutralise)
        except BaseException:
            stream.close()
            raise
        name = f"{stream.table}-{version_name(stream.version)}"
        if spec.feature_group:
            name += f"-{spec.feature_group}"
        return Export(stream.version, fmt, CONTENT_TYPES[fmt], f"{name}.{fmt}",
                      _closing(chunks, stream), stream.fallback)

    def _xlsx_layout(self, prep: Prepared, headers: Sequence[str], types: Sequence[str]
                     ) -> tuple[int, list[float]]:
        """How many rows an export of `prep` has and how wide its columns are, in one scan
        (the count's, with each column's widest value measured alongside)."""
        count = prep.count()
        measures = [xlsxrows.width_sql(c, t) for c, t in zip(prep.columns, types, strict=True)]
        extra = "".join(f", {m}" for m in measures if m is not None)
        head = "SELECT count(*) AS n"
        assert count.sql.startswith(head)
        cur = self._cursor()
        row = cur.execute(head + extra + count.sql[len(head):], count.params).fetchone()
        values = iter((row or (0,))[1:])
        measured = [None if m is None else next(values, None) for m in measures]
        rows = max(0, int(row[0] if row else 0) - prep.offset)
        if prep.limit is not None:
            rows = min(rows, prep.limit)
        return rows, xlsxrows.column_widths(headers, types, measured)

    def facets(self, spec: QuerySpec, columns: Sequence[str], *, top: int = 10,
               version: int | None = None, as_of: date | datetime | None = None) -> Facets:
        """The `top` most frequent values per column under the spec's filters, and the rest."""
        if not 1 <= top <= MAX_FACET_TOP:
            raise BadValue("top", top, f"must be between 1 and {MAX_FACET_TOP}")
        snap, prep = self._prepare(spec, version, as_of, page=True)
        cur = self._cursor()
        with self._reading(snap):
            total = self._scalar(cur, prep.count())
        out = []
        for column in columns:
            name = prep.schema.column(column).name
            if prep.schema.column(column).kind in ("list", "other"):
                raise BadValue("facets", column, "cannot count values of a list column")
            st = prep.facet(name, top)
            with self._reading(snap):
                t = cur.sql(st.sql, params=st.params).to_arrow_table()
            values = tuple(FacetValue(v, n) for v, n in zip(
                t.column("value").to_pylist(), t.column("n").to_pylist(), strict=True))
            out.append(Facet(name, values, total - sum(v.count for v in values)))
        return Facets(snap.version, total, tuple(out), snap.fallback)

    def diff(self, from_version: int, to_version: int | None = None, *,
             feature_group: str | None = None, limit: int = 1000, offset: int = 0,
             scope: RowScope | None = None) -> Diff:
        """Features added, removed and changed between two versions (to: current)."""
        old = self.snapshot(from_version)
        new = self.snapshot(to_version)
        return diff.diff_versions(self._cursor(), old, new, self._schema(old, "features"),
                                  self._schema(new, "features"), feature_group=feature_group,
                                  limit=limit, offset=offset, scope=scope)

    def sql(self, text: str, *, limit: int = 10_000, timeout_s: float = 30.0,
            max_bytes: int = analyst.DEFAULT_SQL_MAX_BYTES, version: int | None = None,
            as_of: date | datetime | None = None, scope: RowScope | None = None) -> SqlResult:
        """Run one read-only statement (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE) over the views
        features, changes, runs, daily_counts, name_map, mcc_mnc_map of a version. Reading
        stops before the rows kept pass `max_bytes` of Arrow data (`SqlResult.over_bytes`).

        With `scope`, the statement reads views restricted to the scope (features, changes,
        mcc_mnc_map) and nothing else: no table functions, files or other schemas.

        Raises:
            SqlRejected: not one read-only statement, or DuckDB refused it (e.g. a file outside
                the snapshots folder); QueryTimeout: it ran longer than `timeout_s`.
        """
        snap = self.snapshot(version, as_of)
        schema = self._ensure_views(snap)
        only = None
        if scope is not None:
            schema = self._ensure_scoped_views(snap, schema, scope)
            only = frozenset(SCOPED_TABLES)
        return analyst.run_sql(self._con, schema, snap.version, text, limit=limit,
                               timeout_s=timeout_s, max_bytes=max_bytes, only_tables=only)

    def _ensure_scoped_views(self, snap: Snapshot, base: str, scope: RowScope) -> str:
        """A schema of views over `base` restricted to `scope` (the tables a scope applies
        to, nothing else), made once per version and scope."""
        name = f"{base}_s{scope.key}"
        with self._lock:
            if (snap.version, scope.key) not in self._scoped_views:
                cur = self._con.cursor()
                try:
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
                    for table in SCOPED_TABLES:
                        where = scope.predicate(table, None)
                        cur.execute(f"CREATE OR REPLACE VIEW {name}.{table} AS SELECT * FROM "
                                    f"{base}.{table}" + (f" WHERE {where}" if where else ""))
                finally:
                    cur.close()
                self._scoped_views.add((snap.version, scope.key))
        return name

    def write_catalog(self, path: Path, *, version: int | None = None) -> Path:
        """A DuckDB database file with views over a version's files (for DBeaver, Jupyter)."""
        snap = self.snapshot(version)
        return analyst.write_catalog(Path(path), snap, self._view_sources(snap))

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _reading(self, snap: Snapshot) -> Generator[None, None, None]:
        """Around a read of `snap`'s files. Damaged Parquet fails in many ways (DuckDB IO,
        invalid input or thrift errors, even bad UTF-8 or dates on the way to Python), so any
        error but the query room's own makes the resolver check the version again: damaged,
        it raises `SnapshotReadError` (and "current" falls back from now on); intact, the
        error is re-raised as it was (it has another cause)."""
        try:
            yield
        except QueryError:
            raise
        except Exception as exc:
            problems = self.resolver.read_failed(snap.version, exc)
            if problems:
                raise SnapshotReadError(snap.version, problems) from exc
            raise

    def _guarded(self, snap: Snapshot, reader: pa.RecordBatchReader
                 ) -> Iterator[pa.RecordBatch]:
        """A stream's batches; an error mid-stream (too late for another answer) still has the
        version checked again, so the next request does not read the damage."""
        with self._reading(snap):
            yield from reader

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._con.cursor()
            with self._cursors_lock:
                self._cursors.append(cur)
        return cur

    @staticmethod
    def _scalar(cur: duckdb.DuckDBPyConnection, st: Statement) -> int:
        rows = cur.execute(st.sql, st.params).fetchall()
        return int(rows[0][0]) if rows else 0

    def _prepare(self, spec: QuerySpec, version: int | None, as_of: date | datetime | None,
                 *, page: bool) -> tuple[Snapshot, Prepared]:
        if spec.table not in TABLES:
            raise UnknownTable(spec.table, TABLES)
        state = decode_cursor(spec.cursor) if spec.cursor else None
        if state is not None and version is None and as_of is None:
            try:  # the cursor pins its version: every page comes from the same one
                snap = self.resolver.pinned(state.version)
            except UnknownVersion:
                raise BadCursor(f"snapshot {version_name(state.version)} is no longer kept; "
                                "start again without a cursor") from None
        else:
            snap = self.snapshot(version, as_of)
        files = self._files(snap, spec)
        with self._reading(snap):
            schema = self._schema(snap, spec.table)
        return snap, prepare(spec, version=snap.version, files=files, schema=schema,
                             cursor=state, page=page)

    @staticmethod
    def _files(snap: Snapshot, spec: QuerySpec) -> list[str]:
        """The files a spec reads: with a row scope, only its groups' (an out-of-scope group
        is unknown, and the error lists only groups in scope)."""
        scope = spec.scope
        if scope is None or spec.table != "features":
            return snap.files(spec.table, spec.feature_group)
        if spec.feature_group is not None:
            if not scope.allows_group(spec.feature_group):
                raise UnknownGroup(spec.feature_group,
                                   scope.visible_groups(sorted(snap.groups())),
                                   version=snap.version)
            return snap.files(spec.table, spec.feature_group)
        if scope.groups() is None:
            return snap.files(spec.table)
        return [f for g in scope.visible_groups(sorted(snap.groups()))
                for f in snap.files(spec.table, g)]

    def _schema(self, snap: Snapshot, table: str) -> TableSchema:
        key = (snap.version, table)
        cached = self._schemas.get(key)
        if cached is None:
            cached = self._schemas[key] = describe(self._cursor(), snap, table)
        return cached

    def _view_sources(self, snap: Snapshot) -> dict[str, str]:
        return {t: view_select(snap, t, self._schema(snap, t)) for t in TABLES}

    def _ensure_views(self, snap: Snapshot) -> str:
        name = snap.name
        with self._lock:
            if snap.version not in self._views:
                gone = self._views - set(self.resolver.versions())
                cur = self._con.cursor()
                try:
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
                    for table, select in self._view_sources(snap).items():
                        cur.execute(f"CREATE OR REPLACE VIEW {name}.{table} AS {select}")
                    for v in gone:  # versions retention deleted
                        cur.execute(f"DROP SCHEMA IF EXISTS {version_name(v)} CASCADE")
                        for sv, key in [k for k in self._scoped_views if k[0] == v]:
                            cur.execute(f"DROP SCHEMA IF EXISTS {version_name(sv)}_s{key} "
                                        "CASCADE")
                            self._scoped_views.discard((sv, key))
                finally:
                    cur.close()
                self._views = (self._views - gone) | {snap.version}
        return name


def _line_sql(prep: Prepared, fmt: str, neutralise: bool, tz: str | None = None) -> str:
    """The text of one row of `prep` in a text format, as a DuckDB expression."""
    cols = [(c, prep.schema.column(c).type) for c in prep.columns]
    if fmt == "csv":
        return textrows.csv_line_sql(cols, neutralise=neutralise, tz=tz)
    if fmt == "xlsx":
        return xlsxrows.xlsx_row_sql(cols, neutralise=neutralise, tz=tz)
    return textrows.json_line_sql(cols, json_columns=JSON_COLUMNS,
                                  end=",\n" if fmt == "json" else "\n")


def _arrow(cur: duckdb.DuckDBPyConnection, st: Statement) -> pa.Table:
    """A small statement's rows as Arrow, through `execute`: `cur.sql` binds the statement
    once more before running it, which costs more than reading a page of a Parquet file."""
    cur.execute(st.sql, st.params)
    return cur.to_arrow_table()


def _closing(chunks: Iterator[bytes], stream: Stream) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        stream.close()

