"""XLSX made the way CSV is: DuckDB writes each row's worksheet XML, Python only zips it.

openpyxl's write-only mode made a Python object per cell: about 8,600 rows of 22 columns a
second (a 60k-row view took 7 s). Here the `<row>` element of every row is one DuckDB
expression (`xlsx_row_sql`), like a CSV line, and Python puts in the row numbers, frames the
sheet and deflates it into a workbook, streaming: memory stays constant in the number of rows.

The workbook: one sheet, the header row frozen, text as inline strings (so a text starting with
``=`` is never a formula), numbers and booleans as values, dates and time stamps as Excel serial
numbers with a date format (time stamps in UTC, without zone: Excel has none), lists and structs
as JSON text. Characters XML cannot hold are dropped; a text is cut at 32,767 characters, the
most a cell holds. With `neutralise`, a text starting with = + - @ TAB or CR gets a leading
apostrophe (OWASP), as in CSV. A missing value (and empty text) is an empty cell.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from xml.sax.saxutils import escape

import pyarrow as pa

from query.errors import ExportError
from query.filters import ident
from query.textrows import formula_prefix_sql, with_lines

XLSX_MAX_ROWS = 1_048_576  # including the header row
XLSX_MAX_CELL = 32_767
#: Where a row's number goes in its XML; XML cannot hold it, so no text carries it.
ROW_MARK = "\x01"
#: Characters XML 1.0 cannot hold (TAB, LF and CR can), as an RE2 class.
_ILLEGAL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x{FFFE}\x{FFFF}]"
_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT")
# styles.xml below: 0 general, 1 date and time, 2 date
_STYLE_TIMESTAMP, _STYLE_DATE = 1, 2
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
    text = (f"replace(replace(replace(left({clean}, {XLSX_MAX_CELL}), '&', '&amp;'), "
            f"'<', '&lt;'), '>', '&gt;')")
    return (f"""CASE WHEN {expr} IS NULL OR {expr} = '' THEN '' ELSE concat('<c r="{ref}" """
            f"""t="inlineStr"><is><t xml:space="preserve">', {text}, '</t></is></c>') END""")


def _value_cell(ref: str, expr: str, value: str, *, attrs: str = "",
                when: str | None = None) -> str:
    test = f"{expr} IS NULL" + (f" OR NOT ({when})" if when else "")
    return (f"""CASE WHEN {test} THEN '' ELSE concat('<c r="{ref}"{attrs}><v>', """
            f"""{value}, '</v></c>') END""")


def cell_sql(name: str, duckdb_type: str, index: int, *, neutralise: bool = False) -> str:
    """One column's `<c>` element (or nothing for a missing value) as a DuckDB expression."""
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
        serial = (f"CAST(epoch_us({c}) / {_US_PER_DAY}.0 + {_EXCEL_EPOCH_DAYS} AS VARCHAR)")
        return _value_cell(ref, c, serial, attrs=f' s="{_STYLE_TIMESTAMP}"')
    if t == "VARCHAR" or t == "JSON" or t.startswith("VARCHAR"):
        return _text_cell(ref, c, neutralise=neutralise)
    return _text_cell(ref, f"CAST({c} AS VARCHAR)", neutralise=neutralise)


def xlsx_row_sql(columns: Sequence[tuple[str, str]], *, neutralise: bool = False) -> str:
    """One worksheet `<row>` per row, its number left as `ROW_MARK`, for (name, type) columns."""
    cells = ", ".join(cell_sql(n, t, i, neutralise=neutralise)
                      for i, (n, t) in enumerate(columns))
    return f"""concat('<row r="{ROW_MARK}">', {cells}, '</row>')"""


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
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '</cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetViews><sheetView workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
    '</sheetView></sheetViews><sheetData>')
_SHEET_TAIL = "</sheetData></worksheet>"


def _workbook(sheet: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            f'<sheets><sheet name="{escape(sheet[:31], {chr(34): "&quot;"})}" sheetId="1" '
            'r:id="rId1"/></sheets></workbook>')


def header_row(names: Sequence[str]) -> str:
    cells = "".join(f'<c r="{column_letters(i)}1" t="inlineStr"><is><t xml:space="preserve">'
                    f"{escape(n)}</t></is></c>" for i, n in enumerate(names))
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
                      sheet: str = "data", compresslevel: int = 1) -> Iterator[bytes]:
    """A workbook from batches of `<row>` lines (see `xlsx_row_sql`), in chunks.

    Raises:
        ExportError: more rows than a worksheet holds (check the total before exporting).
    """
    drain = Drain()
    with zipfile.ZipFile(drain, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=compresslevel) as zf:
        for part, text in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _RELS),
                           ("xl/workbook.xml", _workbook(sheet)),
                           ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
                           ("xl/styles.xml", _STYLES)):
            zf.writestr(part, text)
        with zf.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write((_SHEET_HEAD + header_row(names)).encode())
            n = 1
            for batch in lines:
                rows = batch.column(0).to_pylist()
                if n + len(rows) > XLSX_MAX_ROWS:
                    raise ExportError("xlsx", f"more than {XLSX_MAX_ROWS - 1:,} rows; filter "
                                              "further or choose csv or parquet")
                fh.write("".join(row.replace(ROW_MARK, str(i))
                                 for i, row in enumerate(rows, n + 1)).encode())
                n += len(rows)
                yield drain.take()
            fh.write(_SHEET_TAIL.encode())
    yield drain.take()


def encode_xlsx(reader: pa.RecordBatchReader, *, neutralise: bool = False, sheet: str = "data",
                batch_rows: int = 65_536) -> Iterator[bytes]:
    """Any Arrow stream as a workbook, in chunks (see the module's docstring).

    Raises:
        ExportError: more rows than a worksheet holds.
    """
    return with_lines(reader, lambda cols: xlsx_row_sql(cols, neutralise=neutralise),
                      lambda lines, names: encode_xlsx_lines(lines, names, sheet=sheet),
                      batch_rows)
