"""CSV and JSON text built by DuckDB: one line per row, made in SQL, handed over as Arrow buffers.

Formatting 22 columns of a million rows costs ~4 CPU seconds in pyarrow's CSV writer (one
thread) and far more with Python's json, but ~1.2 in DuckDB (all threads). So the engine makes
the text in the query itself, and Python only slices each batch's string buffer. Any other
Arrow stream (e.g. a page already read) goes through a small private DuckDB the same way, so
both paths give the same bytes.

CSV (RFC 4180): fields separated by ``,``, records end with CRLF; text is always quoted with
``"`` doubled inside, so a missing value (nothing) differs from empty text (``""``); time
stamps are ``2026-11-01 09:30:00+00`` (UTC; ``.123456`` before the zone when not whole
seconds), or with `tz` the wall clock there without zone, ``2026-11-01 18:30:00`` (what a
spreadsheet reads as a date: the header names the zone); dates ``2026-11-01``; lists and
structs are JSON text. With `neutralise`, a text starting with = + - @ TAB or CR gets a leading
``'`` (OWASP CSV injection), so a spreadsheet shows it instead of running it.

JSON: one object per row, keys in column order, UTF-8; time stamps ``2026-11-01T09:30:00.000000Z``;
columns holding JSON text (`json_columns`) are embedded as JSON values when they parse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence

import duckdb
import pyarrow as pa

BOM = b"\xef\xbb\xbf"
JSON_TS = "%Y-%m-%dT%H:%M:%S.%f"
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START = r"^[=+\-@\t\r]"  # FORMULA_CHARS as an RE2 pattern
_lock = threading.Lock()
_db: duckdb.DuckDBPyConnection | None = None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _nested(t: str) -> bool:
    return t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION"))


def _text(t: str) -> bool:
    return t in ("VARCHAR", "JSON") or t.startswith("VARCHAR")


def _ts_format(t: str, fmt: str) -> str:
    return fmt + ("Z" if "TIME ZONE" in t or t == "TIMESTAMPTZ" else "")


# -- CSV ----------------------------------------------------------------------------------------

def formula_prefix_sql(expr: str) -> str:
    """``'`` when the text `expr` starts like a formula (see FORMULA_CHARS), else empty.

    One regular expression: not "left(x, 1) IN (...)", which DuckDB rewrote into a join whose
    plan returned rows out of order (DuckDB 2.0), and not six starts_with calls, which repeat
    `expr` (for XLSX, a cell's cleaned text) six times."""
    return f"CASE WHEN regexp_matches({expr}, '{_FORMULA_START}') THEN '''' ELSE '' END"


def local_time_sql(expr: str, duckdb_type: str, tz: str) -> str:
    """A time stamp as the (zone-less) wall clock of the IANA zone `tz`; one without zone is
    taken as UTC, as FMW stores every time."""
    t = duckdb_type.upper()
    aware = expr if "TIME ZONE" in t or t == "TIMESTAMPTZ" else f"timezone('UTC', {expr})"
    return f"timezone({_literal(tz)}, {aware})"


def zone_label(name: str, duckdb_type: str, tz: str | None) -> str:
    """A column's header: a time stamp's names the zone its wall clock is in."""
    if tz and duckdb_type.upper().startswith("TIMESTAMP"):
        return f"{name} ({tz})"
    return name


def _quoted(expr: str, *, neutralise: bool = False) -> str:
    prefix = f"{formula_prefix_sql(expr)}, " if neutralise else ""
    return (f"""CASE WHEN {expr} IS NULL THEN '' """
            f"""ELSE concat('"', {prefix}replace({expr}, '"', '""'), '"') END""")


def csv_field_sql(name: str, duckdb_type: str, *, neutralise: bool = False,
                  tz: str | None = None) -> str:
    """The CSV text of one column (without separator) as a DuckDB expression (`tz`: time
    stamps as that zone's wall clock)."""
    c, t = _ident(name), duckdb_type.upper()
    if tz and t.startswith("TIMESTAMP"):
        return f"coalesce(CAST({local_time_sql(c, t, tz)} AS VARCHAR), '')"
    if _nested(t):
        return _quoted(f"CAST(to_json({c}) AS VARCHAR)")
    if _text(t):
        return _quoted(c, neutralise=neutralise)
    if t in ("BLOB", "BIT", "UUID", "INTERVAL", "TIME", "TIME WITH TIME ZONE"):
        return _quoted(f"CAST({c} AS VARCHAR)")
    # numbers, booleans, dates, time stamps (DuckDB's text: cheaper than strftime)
    return f"coalesce(CAST({c} AS VARCHAR), '')"


def csv_line_sql(columns: Sequence[tuple[str, str]], *, neutralise: bool = False,
                 tz: str | None = None) -> str:
    """One CSV record (with its CRLF) per row, for (name, DuckDB type) columns."""
    fields = ", ',', ".join(csv_field_sql(n, t, neutralise=neutralise, tz=tz)
                            for n, t in columns)
    return f"concat({fields}, chr(13), chr(10))"


def csv_header(names: Sequence[str]) -> bytes:
    return (",".join('"' + n.replace('"', '""') + '"' for n in names) + "\r\n").encode()


# -- JSON ---------------------------------------------------------------------------------------

def json_value_sql(name: str, duckdb_type: str, *, embed: bool = False) -> str:
    """The JSON value of one column as a DuckDB expression (`embed`: JSON text as JSON)."""
    c, t = _ident(name), duckdb_type.upper()
    if embed and _text(t):
        return f"CASE WHEN json_valid({c}) THEN json({c}) ELSE to_json({c}) END"
    if t.startswith("TIMESTAMP"):
        return f"strftime({c}, '{_ts_format(t, JSON_TS)}')"
    if t in ("BLOB", "BIT", "UUID", "INTERVAL", "TIME", "TIME WITH TIME ZONE") or t == "DATE":
        return f"CAST({c} AS VARCHAR)"
    if t.startswith(("FLOAT", "DOUBLE", "REAL")):  # JSON has no NaN or infinity
        return f"CASE WHEN isfinite({c}) THEN {c} END"
    return c


def json_line_sql(columns: Sequence[tuple[str, str]], *, json_columns: Collection[str] = (),
                  end: str = "\n") -> str:
    """One JSON object per row followed by `end`, for (name, DuckDB type) columns."""
    pairs = ", ".join(f"{_literal(n)}, {json_value_sql(n, t, embed=n in json_columns)}"
                      for n, t in columns)
    ends = ", ".join(f"chr({ord(ch)})" for ch in end)
    return f"concat(CAST(json_object({pairs}) AS VARCHAR), {ends})"


# -- from lines to bytes ------------------------------------------------------------------------

def batch_bytes(batch: pa.RecordBatch) -> bytes:
    """The text of a one-column batch of lines, taken straight from the string buffer."""
    col = batch.column(0)
    if pa.types.is_string(col.type) and col.null_count == 0 and len(col):
        offsets = pa.Array.from_buffers(pa.int32(), len(col) + 1, [None, col.buffers()[1]],
                                        offset=col.offset)
        start, end = offsets[0].as_py(), offsets[len(col)].as_py()
        return col.buffers()[2][start:end].to_pybytes()
    return "".join(v or "" for v in col.to_pylist()).encode()


def encode_csv_lines(lines: pa.RecordBatchReader, names: Sequence[str], *, bom: bool = False,
                     header: bool = True) -> Iterator[bytes]:
    """A CSV file from batches of lines (see `csv_line_sql`), one chunk per batch."""
    first = (BOM if bom else b"") + (csv_header(names) if header else b"")
    if first:
        yield first
    for batch in lines:
        if batch.num_rows:
            yield batch_bytes(batch)


def encode_json_lines(lines: pa.RecordBatchReader, *, array: bool) -> Iterator[bytes]:
    """NDJSON from lines ending in LF, or (`array`) a JSON array from lines ending in ",\\n"
    (the last one's comma is dropped: each chunk is held back until the next one arrives)."""
    if not array:
        for batch in lines:
            if batch.num_rows:
                yield batch_bytes(batch)
        return
    yield b"[\n"
    held = b""
    for batch in lines:
        if batch.num_rows:
            if held:
                yield held
            held = batch_bytes(batch)
    yield (held[:-2] + b"\n" if held else b"") + b"]\n"


# -- any Arrow stream ---------------------------------------------------------------------------

def _database() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB that only formats Arrow data: no file access, locked."""
    global _db
    with _lock:
        if _db is None:
            con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                     "autoload_known_extensions": False})
            con.execute("SET GLOBAL TimeZone = 'UTC'")
            con.execute("SET GLOBAL enable_external_access = false")
            con.execute("SET GLOBAL lock_configuration = true")
            _db = con
        return _db


def _lines(cur: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader,
           make_sql: Callable[[list[tuple[str, str]]], str], batch_rows: int
           ) -> tuple[pa.RecordBatchReader, list[str]]:
    """Lines in input order: a plain projection keeps it (preserve_insertion_order); the
    expressions avoid IN lists, which DuckDB may plan as a join that does not."""
    rel = cur.from_arrow(reader)
    columns = [(n, str(t)) for n, t in zip(rel.columns, rel.types, strict=True)]
    lines = rel.project(f"{make_sql(columns)} AS line")
    return lines.to_arrow_reader(batch_rows), [n for n, _ in columns]


def with_lines(reader: pa.RecordBatchReader,
               make_sql: Callable[[list[tuple[str, str]]], str],
               finish: Callable[[pa.RecordBatchReader, list[str]], Iterator[bytes]],
               batch_rows: int = 65_536) -> Iterator[bytes]:
    """Any Arrow stream made into lines by `make_sql` (over its (name, type) columns), then
    into bytes by `finish(lines, names)`."""
    cur = _database().cursor()  # its own, so streams on one thread do not disturb each other
    try:
        lines, names = _lines(cur, reader, make_sql, batch_rows)
        yield from finish(lines, names)
    finally:
        cur.close()


def encode_csv(reader: pa.RecordBatchReader, *, bom: bool = False, neutralise: bool = False,
               header: bool = True, batch_rows: int = 65_536) -> Iterator[bytes]:
    """Any Arrow stream as CSV chunks."""
    return with_lines(reader, lambda cols: csv_line_sql(cols, neutralise=neutralise),
                      lambda lines, names: encode_csv_lines(lines, names, bom=bom,
                                                            header=header), batch_rows)


def encode_json(reader: pa.RecordBatchReader, *, json_columns: Collection[str] = (),
                array: bool = True, batch_rows: int = 65_536) -> Iterator[bytes]:
    """Any Arrow stream as a JSON array (or, `array=False`, NDJSON) in chunks."""
    end = ",\n" if array else "\n"
    return with_lines(reader, lambda cols: json_line_sql(cols, json_columns=json_columns,
                                                         end=end),
                      lambda lines, _: encode_json_lines(lines, array=array), batch_rows)
