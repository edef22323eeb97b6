"""Text sources: decoding bytes, CSV through pyarrow.csv, JSON and JSON Lines.

Used for files and for HTTP bodies alike; the caller supplies the bytes and where they came from.

CSV row numbers count records, not physical lines: the header is row 1, the first data row is
row 2, a quoted value spanning lines counts once and blank lines are skipped without counting
(this is also how pyarrow numbers rows in its own errors).
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv

from fmw.errors import SourceError
from fmw.settings import SourceConfig
from ledger.sources.base import DEFAULT_LIMITS, ROW_COLUMN, RowError, SourceLimits, SourceTable
from ledger.sources.convert import (
    build_table,
    finish,
    json_text,
    kind_of,
    normalize_headers,
    row_numbers,
)
from ledger.sources.jsondepth import check_depth

JsonLayout = Literal["json", "jsonl"]

_BOM = codecs.BOM_UTF8
_CHUNK = 16 << 20
_BLOCK = 8 << 20
_MAX_BLOCK = (1 << 31) - 1
_ALIASES = {"utf8": "utf-8", "euc-kr": "cp949", "euc_kr": "cp949", "euckr": "cp949",
            "ks_c_5601-1987": "cp949", "uhc": "cp949"}
_ROW_RE = re.compile(r"Row #(\d+)")
_COUNT_RE = re.compile(r"Expected (\d+) columns, got (\d+): ?(.*)", re.S)
#: A line with a non-ASCII character and no escaped (non-UTF-8) byte.
_UTF8_LINE_RE = re.compile("^[^\n\udc80-\udcff]*[^\x00-\x7f\udc80-\udcff][^\n\udc80-\udcff]*$",
                           re.M)
_EXCERPT = 40


def _fail(cfg: SourceConfig, location: str, reason: str, row: int | None = None) -> SourceError:
    return SourceError(cfg.name, reason, location=location, row=row)


def _where(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    return f"0x{data[offset]:02x} at line {line} (byte offset {offset})"


def _first_bad_utf8(data: bytes, start: int) -> int | None:
    """Offset of the first byte that is not valid UTF-8, or None; checks in chunks to save memory."""
    view = memoryview(data)[start:]
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        for pos in range(0, len(view), _CHUNK):
            decoder.decode(view[pos:pos + _CHUNK], final=pos + _CHUNK >= len(view))
        return None
    except UnicodeDecodeError:
        pass
    try:  # decode once more in one piece: the exception then holds the absolute offset
        codecs.utf_8_decode(view, "strict", True)
    except UnicodeDecodeError as exc:
        return start + exc.start
    return None  # pragma: no cover - the chunked pass already failed


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _first_utf8_line(data: bytes) -> int | None:
    """Number of the first line holding non-ASCII text that is valid UTF-8, or None.

    Such a line in a file that is not UTF-8 as a whole means encodings were mixed: reading the
    file as CP949 would turn that line into mojibake ("café" -> "caf챕"). Decoding with
    ``surrogateescape`` marks every byte that is not UTF-8 as a lone surrogate (UTF-8 resyncs at
    each newline), so one regex finds such a line without a Python loop over lines.
    """
    text = data.decode("utf-8", "surrogateescape")
    hit = _UTF8_LINE_RE.search(text)
    return None if hit is None else text.count("\n", 0, hit.start()) + 1


def _codec(cfg: SourceConfig, location: str, encoding: str) -> str:
    name = _ALIASES.get(encoding.strip().lower(), encoding.strip().lower())
    if name == "auto":
        return name
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise _fail(cfg, location, f"unknown encoding {encoding!r}") from None


def to_utf8(cfg: SourceConfig, location: str, data: bytes, encoding: str) -> bytes | memoryview:
    """Check or convert `data` to UTF-8 without a BOM.

    Args:
        cfg: the source (for error messages).
        location: file path or URL for error messages.
        data: the raw bytes.
        encoding: ``auto`` (BOM -> UTF-8; else UTF-8; else CP949 unless a line is valid
            non-ASCII UTF-8: mixed files are refused, never read as mojibake), ``utf-8``, ``utf-8-sig``,
            ``cp949``/``euc-kr`` or any Python codec name (from an HTTP charset).

    Returns:
        UTF-8 bytes; valid UTF-8 input is returned as a view, without copying.

    Raises:
        SourceError: the bytes do not decode, or (``auto``) mix UTF-8 and other lines; names the
            line and byte offset of the first bad byte.
    """
    codec = _codec(cfg, location, encoding)
    if codec in ("auto", "utf-8", "utf-8-sig"):
        start = len(_BOM) if data.startswith(_BOM) else 0
        bad = _first_bad_utf8(data, start)
        if bad is None:
            return memoryview(data)[start:]
        if codec != "auto" or start:
            raise _fail(cfg, location, f"not valid UTF-8: undecodable byte {_where(data, bad)}")
        utf8_line = _first_utf8_line(data)
        if utf8_line is not None:
            raise _fail(cfg, location, (
                f"mixed encodings: line {utf8_line} is UTF-8 but line {_line_of(data, bad)} is "
                f"not (undecodable byte {_where(data, bad)}); save the file in one encoding, or "
                "set encoding = \"utf-8\" or \"cp949\" on the source to choose one"))
        try:
            return data.decode("cp949").encode("utf-8")
        except UnicodeDecodeError:
            raise _fail(cfg, location, "not valid UTF-8 or CP949: first byte that is not UTF-8 is "
                        + _where(data, bad)) from None
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(cfg, location, f"not valid {encoding}: undecodable byte "
                    + _where(data, exc.start)) from None


# --- CSV ---------------------------------------------------------------------------------------

def read_csv_bytes(cfg: SourceConfig, location: str, data: bytes, encoding: str,
                   limits: SourceLimits = DEFAULT_LIMITS) -> SourceTable:
    """Parse CSV bytes into a text table with pyarrow (multi-threaded, no Python row loop).

    Args:
        cfg: the source; `delimiter` and `columns` are used.
        location: file path or URL for messages.
        data: the raw bytes.
        encoding: as for `to_utf8`.
        limits: column and cell limits.

    Returns:
        Header names normalized; row 1 is the header, data rows start at 2.

    Raises:
        SourceError: empty input, undecodable bytes, a row with the wrong number of fields, or
            a missing mapped column.
    """
    if not data:
        raise _fail(cfg, location, "file is empty")
    buf = pa.py_buffer(to_utf8(cfg, location, data, encoding))
    parse = pacsv.ParseOptions(delimiter=cfg.delimiter, newlines_in_values=True)
    # The header is read as data (autogenerated names f0, f1, ...) so every column, including
    # the header cells, is forced to string; nothing is type-inferred.
    table = _arrow_csv(cfg, location, buf, parse, limits)
    header = [table.column(i)[0].as_py() for i in range(table.num_columns)] if table.num_rows else []
    names = normalize_headers(header)
    body = table.slice(1)
    columns = [row_numbers(2, body.num_rows), *body.columns]
    return finish(cfg, location, pa.Table.from_arrays(columns, names=[ROW_COLUMN, *names]),
                  limits=limits)


def _arrow_csv(cfg: SourceConfig, location: str, buf: pa.Buffer, parse: pacsv.ParseOptions,
               limits: SourceLimits, block: int = _BLOCK) -> pa.Table:
    def options(threads: bool = True) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(autogenerate_column_names=True, block_size=block,
                                 use_threads=threads)

    convert: pacsv.ConvertOptions | None = None
    try:
        width = len(pacsv.open_csv(pa.BufferReader(buf), parse_options=parse,
                                   read_options=options()).schema)
        if width > limits.max_columns:
            raise _fail(cfg, location, f"has {width:,} columns, above the limit of "
                        f"{limits.max_columns:,} (source_max_columns)")
        convert = pacsv.ConvertOptions(
            column_types={f"f{i}": pa.string() for i in range(width)}, null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=True, check_utf8=False)
        return pacsv.read_csv(pa.BufferReader(buf), parse_options=parse, convert_options=convert,
                              read_options=options())
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "straddl" in message and block < _MAX_BLOCK:
            bigger = min(max(block * 8, buf.size + 1), _MAX_BLOCK)
            return _arrow_csv(cfg, location, buf, parse, limits, bigger)
        if "Empty CSV file" in message:
            raise _fail(cfg, location, "file is empty (no header row)") from None
        if not _ROW_RE.search(message):
            # Threaded parsing does not know row numbers; a serial pass does (error path only).
            # Without `convert` the error was in the first block, before any type conversion.
            try:
                pacsv.read_csv(pa.BufferReader(buf), parse_options=parse,
                               convert_options=convert or pacsv.ConvertOptions(),
                               read_options=options(threads=False))
            except pa.ArrowInvalid as serial:
                message = str(serial)
        raise _csv_error(cfg, location, message, _header_has_mapped(cfg, buf)) from None


def _header_has_mapped(cfg: SourceConfig, buf: pa.Buffer) -> bool:
    """Whether the first line names a mapped column: only then is the file the source's own
    data, and a row excerpt may go into the error (never lines of an unrelated file)."""
    first = bytes(memoryview(buf)[:1 << 16]).split(b"\n", 1)[0].decode("utf-8", "replace")
    header = {cell.strip() for cell in next(csv.reader([first], delimiter=cfg.delimiter), [])}
    return any(col in header for _, col in cfg.columns)


def _csv_error(cfg: SourceConfig, location: str, message: str, show_text: bool) -> SourceError:
    """Turn pyarrow's parse error into a message naming the row (and, for the source's own
    data, a short escaped excerpt of it)."""
    row_match, count = _ROW_RE.search(message), _COUNT_RE.search(message)
    row = int(row_match.group(1)) if row_match else None
    if count:
        text = count.group(3).strip()
        snippet = text if len(text) <= _EXCERPT else text[:_EXCERPT - 3] + "..."
        reason = (f"row has {count.group(2)} fields, expected {count.group(1)} like the header"
                  + (f" (row text: {snippet!r})" if show_text else ""))
    else:
        reason = f"not a readable CSV file: {message.removeprefix('CSV parse error: ')}"
    return _fail(cfg, location, reason, row=row)


# --- JSON --------------------------------------------------------------------------------------

def read_json_bytes(cfg: SourceConfig, location: str, data: bytes, encoding: str,
                    layout: JsonLayout, limits: SourceLimits = DEFAULT_LIMITS) -> SourceTable:
    """Parse a JSON array of objects (optionally under ``records_path``) or JSON Lines.

    Args:
        cfg: the source; `records_path` and `columns` are used.
        location: file path or URL for messages.
        data: the raw bytes.
        encoding: as for `to_utf8`.
        layout: ``json`` (row = 1-based record index) or ``jsonl`` (row = line number).
        limits: nesting depth, column and cell limits.

    Returns:
        Columns are the union of keys in first-seen order; elements that are not objects, and
        objects holding a list or dict in a mapped column, are row errors.

    Raises:
        SourceError: empty input, undecodable bytes, invalid JSON (with its line), nesting
            deeper than ``limits.max_json_depth`` (with its line), a bad `records_path`, or a
            missing mapped column.
    """
    if not data:
        raise _fail(cfg, location, "file is empty")
    utf8 = bytes(to_utf8(cfg, location, data, encoding))
    text = utf8.decode("utf-8")
    too_deep = check_depth(utf8, text, limits.max_json_depth, per_line=layout == "jsonl")
    del utf8
    if too_deep is not None:
        line, column = too_deep
        raise _fail(cfg, location, f"JSON nested deeper than {limits.max_json_depth} levels at "
                    f"line {line}, column {column} (source_max_json_depth)",
                    row=line if layout == "jsonl" else None)
    if layout == "jsonl":
        items = _json_lines(cfg, location, text)
    else:
        items = list(enumerate(_records(cfg, location, _loads(cfg, location, text)), start=1))
    errors: list[RowError] = []
    keys: dict[str, None] = {}
    objects: list[tuple[int, dict[str, Any]]] = []
    for number, item in items:
        if isinstance(item, dict):
            keys.update(dict.fromkeys(item))
            objects.append((number, item))
        else:
            errors.append(RowError(number, f"expected an object, got {kind_of(item)}",
                                   {"value": json_text(item)}))
    order = list(keys)
    rows = ((number, [obj.get(k) for k in order]) for number, obj in objects)
    table, nested = build_table(normalize_headers(order), rows, _mapped(cfg))
    return finish(cfg, location, table, errors + nested, limits)


def _mapped(cfg: SourceConfig) -> dict[str, str]:
    return {col: fld for fld, col in cfg.columns}


def _loads(cfg: SourceConfig, location: str, text: str, line: int | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {line if line is not None else exc.lineno}, column {exc.colno}"
        raise _fail(cfg, location, f"invalid JSON at {where}: {exc.msg}", row=line) from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise _fail(cfg, location, f"invalid JSON: {exc}", row=line) from None
    except RecursionError:  # only if the depth limit is set above what Python can parse
        raise _fail(cfg, location, "JSON nested too deeply to parse", row=line) from None


def _json_lines(cfg: SourceConfig, location: str, text: str) -> list[tuple[int, Any]]:
    # Split on "\n" only: str.splitlines would also split on U+2028, which JSON strings may hold.
    return [(number, _loads(cfg, location, line, number))
            for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _records(cfg: SourceConfig, location: str, doc: Any) -> Sequence[Any]:
    path = cfg.records_path
    if path:
        node = doc
        walked: list[str] = []
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                at = ".".join(walked) or "the top level"
                keys = ", ".join(map(str, node)) if isinstance(node, dict) else kind_of(node)
                raise _fail(cfg, location, f"records_path '{path}': no key '{key}' under {at}"
                            f" (found: {keys or 'nothing'})")
            node = node[key]
            walked.append(key)
        if not isinstance(node, list):
            raise _fail(cfg, location, f"records_path '{path}' holds {kind_of(node)}, "
                        "expected an array of objects")
        return node
    if isinstance(doc, list):
        return doc
    hint = ""
    if isinstance(doc, dict):
        arrays = [k for k, v in doc.items() if isinstance(v, list)]
        hint = f"; set records_path (arrays found under: {', '.join(arrays) or 'none'})"
    raise _fail(cfg, location, f"expected a top-level array of objects, got {kind_of(doc)}{hint}")
