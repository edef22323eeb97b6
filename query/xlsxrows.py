"""XLSX made the way CSV is: DuckDB writes each row's worksheet XML, Python only zips it.

openpyxl's write-only mode made a Python object per cell: about 8,600 rows of 22 columns a
second (a 60k-row view took 7 s). Here the `<row>` element of every row is one DuckDB
expression (`xlsx_row_sql`), like a CSV line, and Python puts in the row numbers, frames the
sheet and deflates it into a workbook, streaming: memory stays constant in the number of rows.

The workbook: one sheet with a bold, frozen header row, an autofilter over it and column widths
(given by the caller, e.g. measured by the engine), and, when the row count is known before the
rows, a sheet dimension, so a large file opens fast. Text is stored as inline strings (so a text
starting with ``=`` is never a formula and ``05`` stays ``05``), numbers and booleans as values,
dates and time stamps as Excel serial numbers with a date format (time stamps as the wall clock
of `tz`, default UTC, without zone: Excel has none; the header says which), lists and structs as
JSON text. Characters XML cannot hold are dropped; a text is cut at 32,767 characters, the
most a cell holds. With `neutralise`, a text starting with = + - @ TAB or CR gets a leading
apostrophe (OWASP), as in CSV. A missing value (and empty text) is an empty cell.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from xml.sax.saxutils import escape

import pyarrow as pa

from query.errors import ExportError
from query.filters import ident
from query.textrows import formula_prefix_sql, local_time_sql, with_lines

XLSX_MAX_ROWS = 1_048_576  # including the header row
XLSX_MAX_CELL = 32_767
#: Where a row's number goes in its XML; XML cannot hold it, so no text carries it.
ROW_MARK = "\x01"
#: Characters XML 1.0 cannot hold (TAB, LF and CR can), as an RE2 class.
_ILLEGAL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x{FFFE}\x{FFFF}]"
_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT")
# styles.xml below: 0 general, 1 date and time, 2 date, 3 bold (the header)
_STYLE_TIMESTAMP, _STYLE_DATE, _STYLE_HEADER = 1, 2, 3
#: Column widths in characters: at least a header's, at most this.
MIN_WIDTH, MAX_WIDTH = 6.0, 60.0
#: Rows turned into Python text at a time.
_SLICE_ROWS = 4_096
_EXCEL_EPOCH_DAYS = 25_569  # 1970-01-01 as an Excel serial day (1900 date system)
_US_PER_DAY = 86_400_000_000


def column_letters(index: int) -> str:
    """A, B, ..., Z, AA, ... for a 0-based column index."""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(65 + rest) + out
    return out


def _text_cell(ref: str, expr: str, *, neutralise: bool) -> str:
    clean = f"regexp_replace({expr}, '{_ILLEGAL}', '', 'g')"
    if neutralise:
        clean = f"concat({formula_prefix_sql(clean)}, {clean})"
    # CR as a reference: an XML parser turns a raw CR (and CR LF) into LF
    text = (f"replace(replace(replace(replace(left({clean}, {XLSX_MAX_CELL}), '&', '&amp;'), "
            f"'<', '&lt;'), '>', '&gt;'), chr(13), '&#13;')")
    return (f"""CASE WHEN {expr} IS NULL OR {expr} = '' THEN '' ELSE concat('<c r="{ref}" """
            f"""t="inlineStr"><is><t xml:space="preserve">', {text}, '</t></is></c>') END""")


def _value_cell(ref: str, expr: str, value: str, *, attrs: str = "",
                when: str | None = None) -> str:
    test = f"{expr} IS NULL" + (f" OR NOT ({when})" if when else "")
    return (f"""CASE WHEN {test} THEN '' ELSE concat('<c r="{ref}"{attrs}><v>', """
            f"""{value}, '</v></c>') END""")


def cell_sql(name: str, duckdb_type: str, index: int, *, neutralise: bool = False,
             tz: str | None = None) -> str:
    """One column's `<c>` element (or nothing for a missing value) as a DuckDB expression
    (time stamps as the wall clock of `tz`, or of UTC)."""
    c, t = ident(name), duckdb_type.upper()
    ref = column_letters(index) + ROW_MARK
    if t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION")):
        return _text_cell(ref, f"CAST(to_json({c}) AS VARCHAR)", neutralise=neutralise)
    if t == "BOOLEAN":
        return _value_cell(ref, c, f"CASE WHEN {c} THEN '1' ELSE '0' END", attrs=' t="b"')
    if t in _INTEGER or t.startswith("DECIMAL"):
        return _value_cell(ref, c, f"CAST({c} AS VARCHAR)")
    if t in ("FLOAT", "DOUBLE", "REAL"):
        return _value_cell(ref, c, f"CAST({c} AS VARCHAR)", when=f"isfinite({c})")
    if t == "DATE":
        days = f"CAST(date_diff('day', DATE '1970-01-01', {c}) + {_EXCEL_EPOCH_DAYS} AS VARCHAR)"
        return _value_cell(ref, c, days, attrs=f' s="{_STYLE_DATE}"')
    if t.startswith("TIMESTAMP"):
        local = local_time_sql(c, t, tz) if tz else c
        serial = (f"CAST(epoch_us({local}) / {_US_PER_DAY}.0 + {_EXCEL_EPOCH_DAYS} AS VARCHAR)")
        return _value_cell(ref, c, serial, attrs=f' s="{_STYLE_TIMESTAMP}"')
    if t == "VARCHAR" or t == "JSON" or t.startswith("VARCHAR"):
        return _text_cell(ref, c, neutralise=neutralise)
    return _text_cell(ref, f"CAST({c} AS VARCHAR)", neutralise=neutralise)


def xlsx_row_sql(columns: Sequence[tuple[str, str]], *, neutralise: bool = False,
                 tz: str | None = None) -> str:
    """One worksheet `<row>` per row, its number left as `ROW_MARK`, for (name, type) columns."""
    cells = ", ".join(cell_sql(n, t, i, neutralise=neutralise, tz=tz)
                      for i, (n, t) in enumerate(columns))
    return f"""concat('<row r="{ROW_MARK}">', {cells}, '</row>')"""


def width_sql(name: str, duckdb_type: str) -> str | None:
    """How wide a column's widest value is, in characters, as a DuckDB aggregate (None: the
    width follows from the type). A character outside ASCII (Hangul, CJK) counts about twice:
    its UTF-8 takes 3 bytes, so (bytes - characters) / 2 is added."""
    c, t = ident(name), duckdb_type.upper()
    if t == "BOOLEAN" or t == "DATE" or t.startswith("TIMESTAMP"):
        return None
    text = c if t == "VARCHAR" or t.startswith("VARCHAR") else f"CAST({c} AS VARCHAR)"
    return f"max(length({text}) + (strlen({text}) - length({text})) // 2)"


def column_widths(headers: Sequence[str], types: Sequence[str],
                  measured: Sequence[int | None]) -> list[float]:
    """Widths (characters) for the columns: the header's or the widest value's, bounded."""
    out = []
    for header, t, m in zip(headers, types, measured, strict=True):
        t = t.upper()
        data = 19 if t.startswith("TIMESTAMP") else 10 if t == "DATE" else (m or 0)
        out.append(min(MAX_WIDTH, max(MIN_WIDTH, len(header) * 1.1 + 2, data + 2)))
    return out


# -- the workbook around the rows ---------------------------------------------------------------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '</Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    '</Relationships>')
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    '</Relationships>')
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '</cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')
_SHEET_VIEW = (
    '<sheetViews><sheetView tabSelected="1" workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
    '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
    '<sheetFormatPr defaultRowHeight="15"/>')


def _sheet_name(sheet: str) -> str:
    """A valid sheet name: at most 31 characters, none of : \\ / ? * [ ]."""
    return re.sub(r"[:\\/?*\[\]]", "_", sheet)[:31] or "data"


def sheet_head(ncols: int, *, rows: int | None = None,
               widths: Sequence[float] | None = None) -> str:
    """The worksheet up to its first row: the dimension (`rows` data rows, when known), the
    frozen header, the column widths."""
    head = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
    if rows is not None and ncols:
        head += f'<dimension ref="A1:{column_letters(ncols - 1)}{rows + 1}"/>'
    head += _SHEET_VIEW
    if widths:
        head += "<cols>" + "".join(f'<col min="{i}" max="{i}" width="{w:.1f}" customWidth="1"/>'
                                   for i, w in enumerate(widths, 1)) + "</cols>"
    return head + "<sheetData>"


def _filter_ref(ncols: int, last_row: int) -> str:
    return f"$A$1:${column_letters(ncols - 1)}${last_row}"


def sheet_tail(ncols: int, last_row: int) -> str:
    """The end of the worksheet: the autofilter over the header and every row."""
    auto = (f'<autoFilter ref="{_filter_ref(ncols, last_row).replace("$", "")}"/>'
            if ncols else "")
    return f"</sheetData>{auto}</worksheet>"


def _workbook(sheet: str, ncols: int, last_row: int) -> str:
    name = _sheet_name(sheet)
    # Excel keeps an autofilter's range as this hidden name too (and writes it back)
    quoted = "'" + name.replace("'", "''") + "'"
    defined = (f'<definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="0" '
               f'hidden="1">{escape(quoted)}!{_filter_ref(ncols, last_row)}</definedName>'
               '</definedNames>' if ncols else "")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            f'<sheets><sheet name="{escape(name, {chr(34): "&quot;"})}" sheetId="1" '
            f'r:id="rId1"/></sheets>{defined}</workbook>')


def header_row(names: Sequence[str]) -> str:
    cells = "".join(f'<c r="{column_letters(i)}1" s="{_STYLE_HEADER}" t="inlineStr"><is>'
                    f'<t xml:space="preserve">{escape(n)}</t></is></c>'
                    for i, n in enumerate(names))
    return f'<row r="1">{cells}</row>'


class Drain(io.RawIOBase):
    """A write-only, unseekable file that hands over what was written since the last `take`
    (zipfile then writes each entry's sizes after its data)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def encode_xlsx_lines(lines: Iterable[pa.RecordBatch], names: Sequence[str], *,
                      sheet: str = "data", compresslevel: int = 1, rows: int | None = None,
                      widths: Sequence[float] | None = None) -> Iterator[bytes]:
    """A workbook from batches of `<row>` lines (see `xlsx_row_sql`), in chunks.

    Args:
        rows: how many rows `lines` holds, when known before (the sheet's dimension).
        widths: each column's width in characters (see `column_widths`).

    Raises:
        ExportError: more rows than a worksheet holds (check the total before exporting).
    """
    drain = Drain()
    with zipfile.ZipFile(drain, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=compresslevel) as zf:
        for part, text in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _RELS),
                           ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
                           ("xl/styles.xml", _STYLES)):
            zf.writestr(part, text)
        with zf.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write((sheet_head(len(names), rows=rows, widths=widths)
                      + header_row(names)).encode())
            n = 1
            for batch in lines:
                if n + batch.num_rows > XLSX_MAX_ROWS:
                    raise ExportError("xlsx", f"more than {XLSX_MAX_ROWS - 1:,} rows; filter "
                                              "further or choose csv or parquet")
                # a slice at a time: a batch's rows as Python text, joined and encoded, took
                # three copies of ~85 MB (65,536 rows of 22 columns)
                for start in range(0, batch.num_rows, _SLICE_ROWS):
                    texts = batch.column(0).slice(start, _SLICE_ROWS).to_pylist()
                    fh.write("".join(row.replace(ROW_MARK, str(i))
                                     for i, row in enumerate(texts, n + 1)).encode())
                    n += len(texts)
                yield drain.take()
            fh.write(sheet_tail(len(names), n).encode())
        # after the sheet: the autofilter's hidden name needs the last row
        zf.writestr("xl/workbook.xml", _workbook(sheet, len(names), n))
    yield drain.take()


def encode_xlsx(reader: pa.RecordBatchReader, *, neutralise: bool = False, sheet: str = "data",
                batch_rows: int = 65_536, tz: str | None = None) -> Iterator[bytes]:
    """Any Arrow stream as a workbook, in chunks (see the module's docstring).

    Raises:
        ExportError: more rows than a worksheet holds.
    """
    return with_lines(reader, lambda cols: xlsx_row_sql(cols, neutralise=neutralise, tz=tz),
                      lambda lines, names: encode_xlsx_lines(lines, names, sheet=sheet),
                      batch_rows)
