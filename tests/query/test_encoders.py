"""Encoders round-trip: CSV (RFC 4180, BOM, formula neutralising), JSON, NDJSON, Parquet, XLSX."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import openpyxl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from query import Engine, ExportError, QuerySpec, encode, xlsxrows
from query import encoders as enc
from query.encoders import encode_csv, encode_json, encode_ndjson, encode_parquet, encode_xlsx

TRICKY = [
    "plain", "a, b", 'say "hi"', "line1\nline2", "cr\r\nlf", "한국어, \"따옴표\"\n줄바꿈",
    "", None, " leading space", "trailing,", '"', ",", "\t", "=1+1", "+82", "-5", "@x",
    "\ttab", "\rcr", "'=already", "a=b", "x-y",
]
N = len(TRICKY)


def table() -> pa.Table:
    return pa.table({
        "text": pa.array(TRICKY, pa.string()),
        "n": pa.array(list(range(N - 1)) + [None], pa.int64()),
        "ts": pa.array([datetime(2026, 11, 1, 9, 30, tzinfo=UTC)] * (N - 1)
                       + [datetime(2026, 11, 1, 9, 30, 1, 123456, tzinfo=UTC)],
                       pa.timestamp("us", "UTC")),
        "day": pa.array([date(2026, 11, 1)] * N, pa.date32()),
        "tags": pa.array([["a", 'b"c'], None] + [[]] * (N - 2), pa.list_(pa.string())),
    })


def reader(t: pa.Table, chunk: int = 5) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=chunk))


def joined(chunks) -> bytes:
    return b"".join(chunks)


def test_csv_round_trips_through_the_csv_module() -> None:
    data = joined(encode_csv(reader(table())))
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["text", "n", "ts", "day", "tags"]
    assert [r[0] for r in rows[1:]] == [t if t is not None else "" for t in TRICKY]
    assert rows[1][4] == '["a","b\\"c"]' and rows[2][4] == ""
    assert rows[1][2] == "2026-11-01 09:30:00+00" and rows[-1][2] == "2026-11-01 09:30:01.123456+00"


def test_csv_is_rfc_4180() -> None:
    data = joined(encode_csv(reader(table()))).decode()
    assert data.startswith('"text","n","ts","day","tags"\r\n')
    assert '"say ""hi"""' in data  # quotes doubled inside quotes
    assert '"line1\nline2"' in data  # a newline inside a quoted field stays as it is
    assert data.endswith("\r\n") and data.count("\r\n") >= N + 1


def test_csv_keeps_null_and_empty_text_apart() -> None:
    t = pa.table({"a": pa.array(["", None, "x"])})
    parsed = pacsv.read_csv(io.BytesIO(joined(encode_csv(reader(t)))),
                            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
                            convert_options=pacsv.ConvertOptions(
                                column_types={"a": pa.string()}, strings_can_be_null=True,
                                quoted_strings_can_be_null=False))
    assert parsed.column("a").to_pylist() == ["", None, "x"]


def test_csv_round_trips_through_pyarrow_with_types() -> None:
    t = table().drop_columns(["tags"])
    back = pacsv.read_csv(io.BytesIO(joined(encode_csv(reader(t)))), convert_options=(
        pacsv.ConvertOptions(column_types=t.schema, strings_can_be_null=True,
                             quoted_strings_can_be_null=False)))
    assert back.equals(t)


@pytest.mark.parametrize("bom", [True, False])
def test_csv_bom_for_excel(bom: bool) -> None:
    data = joined(encode_csv(reader(table()), bom=bom))
    assert data.startswith(enc.BOM) is bom
    assert "한국어" in data.decode("utf-8-sig")


@pytest.mark.parametrize(("cell", "out"), [
    ("=1+1", "'=1+1"), ("+82", "'+82"), ("-5", "'-5"), ("@x", "'@x"), ("\ttab", "'\ttab"),
    ("\rcr", "'\rcr"), ("plain", "plain"), ("a=b", "a=b"), ("x-y", "x-y"), ("", ""),
    (" =1", " =1"), ("'=already", "'=already"), ("한국어", "한국어"),
])
def test_formula_neutralising(cell: str, out: str) -> None:
    t = pa.table({"a": [cell], "n": [-5]})
    data = joined(encode_csv(reader(t), neutralise=True)).decode()
    rows = list(csv.reader(io.StringIO(data, newline="")))
    assert rows[1] == [out, "-5"]  # numbers are numbers, not formulas: left alone
    plain = list(csv.reader(io.StringIO(joined(encode_csv(reader(t))).decode(), newline="")))
    assert plain[1][0] == cell  # only when asked


def test_csv_of_an_empty_result_still_has_the_header() -> None:
    t = table().slice(0, 0)
    assert joined(encode_csv(reader(t))) == b'"text","n","ts","day","tags"\r\n'


def test_encoders_stream_one_chunk_per_batch() -> None:
    chunks = [c for c in encode_csv(reader(table(), chunk=2)) if c]
    assert len(chunks) >= N // 2
    chunks = [c for c in encode_parquet(reader(table(), chunk=2)) if c]
    assert len(chunks) >= N // 2


def test_parquet_round_trip_is_exact() -> None:
    t = table()
    back = pq.read_table(io.BytesIO(joined(encode_parquet(reader(t)))))
    assert back.equals(t)


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_round_trip(fmt: str) -> None:
    t = table()
    data = joined(encode(reader(t), fmt)).decode()
    if fmt == "json":
        rows = json.loads(data)
    else:
        assert data.endswith("\n")
        rows = [json.loads(line) for line in data.splitlines()]
    assert [r["text"] for r in rows] == TRICKY
    assert rows[0]["ts"] == "2026-11-01T09:30:00.000000Z" and rows[0]["day"] == "2026-11-01"
    assert rows[0]["tags"] == ["a", 'b"c'] and rows[-1]["n"] is None
    assert rows[-1]["ts"] == "2026-11-01T09:30:01.123456Z"


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_embeds_json_text_columns(fmt: str) -> None:
    t = pa.table({"attrs": ['{"a": [1, "한"]}', "not json", None]})
    data = joined(encode(reader(t), fmt, json_columns={"attrs"})).decode()
    rows = json.loads(data) if fmt == "json" else [json.loads(x) for x in data.splitlines()]
    assert [r["attrs"] for r in rows] == [{"a": [1, "한"]}, "not json", None]


def test_json_of_an_empty_result() -> None:
    assert json.loads(joined(encode_json(reader(table().slice(0, 0))))) == []
    assert joined(encode_ndjson(reader(table().slice(0, 0)))) == b""


@pytest.mark.parametrize("neutralise", [False, True])
def test_xlsx_round_trip(neutralise: bool) -> None:
    data = joined(encode_xlsx(reader(table()), neutralise=neutralise))
    ws = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("text", "n", "ts", "day", "tags")
    texts = [r[0] for r in rows[1:]]
    # Regression: CR became LF (an XML parser turns a raw CR and CR LF into LF); now written
    # as a character reference, every text comes back exactly.
    for got, want in zip(texts, TRICKY, strict=True):
        if want in (None, ""):
            assert got is None
        elif neutralise and want[0] in "=+-@\t\r":
            assert got == "'" + want
        else:
            assert got == want
    assert rows[1][2] == datetime(2026, 11, 1, 9, 30)  # UTC, without zone (Excel has none)
    assert rows[1][4] == '["a","b\\"c"]'  # JSON text, as in CSV


def test_xlsx_text_starting_with_equals_is_never_a_formula() -> None:
    data = joined(encode_xlsx(reader(pa.table({"a": ["=SUM(1,2)", '=HYPERLINK("x")']}))))
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert [c.data_type for c in ws["A"][1:]] == ["s", "s"]
    assert ws["A2"].value == "=SUM(1,2)"


def test_xlsx_drops_characters_excel_cannot_hold() -> None:
    data = joined(encode_xlsx(reader(pa.table({"a": ["bell\x07 and nul\x00"]}))))
    assert openpyxl.load_workbook(io.BytesIO(data)).active["A2"].value == "bell and nul"


def test_xlsx_refuses_more_rows_than_a_sheet_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsxrows, "XLSX_MAX_ROWS", 5)
    with pytest.raises(ExportError) as info:
        joined(encode_xlsx(reader(table())))
    assert info.value.fmt == "xlsx"


def test_unknown_format() -> None:
    with pytest.raises(ExportError) as info:
        encode(reader(table()), "xml")
    assert "ndjson" in str(info.value)


# -- through the engine ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson", "parquet", "xlsx"])
def test_export_of_a_group_in_every_format(engine: Engine, fmt: str) -> None:
    export = engine.export(QuerySpec(feature_group="volte"), fmt, bom=True)
    data = joined(export.chunks)
    assert export.filename == f"features-v000002-volte.{fmt}"
    assert export.content_type == enc.CONTENT_TYPES[fmt]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    elif fmt == "json":
        rows = json.loads(data)
    elif fmt == "ndjson":
        rows = [json.loads(x) for x in data.decode().splitlines()]
    elif fmt == "parquet":
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
    else:
        ws = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
        values = list(ws.iter_rows(values_only=True))
        rows = [dict(zip(values[0], r, strict=True)) for r in values[1:]]
    assert [r["feature_group"] for r in rows] == ["volte"] * 4
    assert [r["notes"] for r in rows][:3] == ["출시 완료", 'He said "soon", maybe',
                                              "line one\nline two"]
    assert rows[2]["value"] == '=HYPERLINK("http://x","y")'
    if fmt in ("json", "ndjson"):
        assert rows[0]["attrs"] == {"row": "VoLTE", "비고": "메모"}


def test_export_of_everything_matches_the_query(engine: Engine) -> None:
    data = joined(engine.export(QuerySpec(), "parquet").chunks)
    exported = pq.read_table(io.BytesIO(data))
    queried = engine.query(QuerySpec(limit=1000)).rows
    assert exported.equals(queried)  # same rows, same order (the file order is the default)


@pytest.mark.parametrize(("fmt", "neutralise"), [("csv", False), ("csv", True),
                                                 ("json", False), ("ndjson", False)])
@pytest.mark.parametrize("table", ["features", "changes", "runs", "mcc_mnc_map"])
def test_engine_text_exports_are_byte_identical_to_the_generic_encoders(
        engine: Engine, table: str, fmt: str, neutralise: bool) -> None:
    """The engine makes CSV/JSON text inside its query; a page goes through `encode`."""
    fast = joined(engine.export(QuerySpec(table=table), fmt, neutralise=neutralise).chunks)
    with engine.stream(QuerySpec(table=table)) as s:
        generic = joined(encode(s.reader, fmt, neutralise=neutralise,
                                json_columns=enc.JSON_COLUMNS))
    assert fast == generic
    n = engine.count(QuerySpec(table=table))
    if fmt == "csv":
        assert len(list(csv.reader(io.StringIO(fast.decode(), newline="")))) == n + 1
    elif fmt == "json":
        assert len(json.loads(fast)) == n
    else:
        assert len([json.loads(x) for x in fast.decode().splitlines()]) == n


@pytest.mark.parametrize("neutralise", [False, True])
def test_export_order_is_stable(engine: Engine, neutralise: bool) -> None:
    """Regression: without an explicit ORDER BY, DuckDB 2.0 returned the groups' files in a
    varying order for some projections (seen with the neutralising CSV expression)."""
    outs = {joined(engine.export(QuerySpec(), "csv", neutralise=neutralise).chunks)
            for _ in range(25)}
    assert len(outs) == 1
    rows = list(csv.DictReader(io.StringIO(outs.pop().decode(), newline="")))
    keys = [(r["feature_group"], r["feature_name"], r["mcc"], r["mnc"]) for r in rows]
    assert keys == sorted(keys) and len(keys) == 10


@pytest.mark.parametrize(("index", "letters"), [
    (0, "A"), (25, "Z"), (26, "AA"), (51, "AZ"), (52, "BA"), (701, "ZZ"), (702, "AAA"),
    (16_383, "XFD"),
])
def test_xlsx_column_letters(index: int, letters: str) -> None:
    assert xlsxrows.column_letters(index) == letters


def test_xlsx_keeps_every_type_and_position() -> None:
    from decimal import Decimal
    long = "가" * 40_000
    t = pa.table({
        "flag": pa.array([True, False, None]),
        "x": pa.array([1.5, float("nan"), float("inf")]),
        "big": pa.array([2**53, -7, None], pa.int64()),
        "price": pa.array([Decimal("12.34"), None, Decimal("-0.50")], pa.decimal128(10, 2)),
        "naive": pa.array([datetime(1999, 12, 31, 23, 59, 59), None,
                           datetime(2026, 1, 2, 3, 4, 5, 500_000)], pa.timestamp("us")),
        "text": pa.array(["a & b <c> \"d\" 'e'", "", long]),
        "nested": pa.array([{"k": 1}, None, {"k": None}], pa.struct([("k", pa.int64())])),
        **{f"c{i}": pa.array([f"v{i}", None, None]) for i in range(24)},  # past column Z
    })
    data = joined(encode_xlsx(reader(t, chunk=2)))
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == tuple(t.column_names)
    assert rows[1][:7] == (True, 1.5, 2**53, 12.34, datetime(1999, 12, 31, 23, 59, 59),
                           "a & b <c> \"d\" 'e'", '{"k":1}')
    assert rows[2][:7] == (False, None, -7, None, None, None, None)  # NaN: no cell
    assert rows[3][:4] == (None, None, None, -0.5)  # infinity: no cell
    assert rows[3][4] == datetime(2026, 1, 2, 3, 4, 5, 500_000)
    assert rows[3][5] == "가" * 32_767 and rows[3][6] == '{"k":null}'
    assert rows[1][7:] == tuple(f"v{i}" for i in range(24)) and ws["AE2"].value == "v23"
    assert ws["E2"].number_format == "yyyy-mm-dd hh:mm:ss" and ws["A2"].data_type == "b"
    assert ws.freeze_panes == "A2"


def test_xlsx_is_a_well_formed_package() -> None:
    import xml.etree.ElementTree as ET
    import zipfile
    data = joined(encode_xlsx(reader(table())))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == [
            "[Content_Types].xml", "_rels/.rels", "xl/_rels/workbook.xml.rels",
            "xl/styles.xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"]
        for name in zf.namelist():
            ET.fromstring(zf.read(name))
        sheet = ET.fromstring(zf.read("xl/worksheets/sheet1.xml"))
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    rows = sheet.findall("m:sheetData/m:row", ns)
    assert [r.get("r") for r in rows] == [str(i) for i in range(1, N + 2)]
    assert all(c.get("r", "").endswith(r.get("r", "-")) for r in rows for c in r)


def test_xlsx_through_the_engine_has_a_filtered_bold_header_widths_and_a_dimension(
        engine: Engine) -> None:
    """Issue 12 §3: a sheet that opens large files fast and reads well (the engine counts and
    measures the rows first)."""
    data = joined(engine.export(QuerySpec(columns=("feature_name", "notes", "first_run_id")),
                                "xlsx").chunks)
    n = engine.count(QuerySpec()) + 1
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert ws.auto_filter.ref == f"A1:C{n}" and ws.freeze_panes == "A2"
    assert ws["A1"].font.b and not ws["A2"].font.b
    assert 6 <= ws.column_dimensions["C"].width < ws.column_dimensions["B"].width <= 60
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert f'<dimension ref="A1:C{n}"/>' in zf.read("xl/worksheets/sheet1.xml").decode()


def test_xlsx_and_csv_times_in_a_zone_are_its_wall_clock_and_say_so(engine: Engine) -> None:
    spec = QuerySpec(columns=("feature_name", "last_changed_at"), limit=1)
    instant = engine.query(spec).rows.column("last_changed_at")[0].as_py()
    local = instant.astimezone(ZoneInfo("Asia/Seoul")).replace(tzinfo=None)
    ws = openpyxl.load_workbook(io.BytesIO(joined(engine.export(
        spec, "xlsx", tz="Asia/Seoul").chunks))).active
    assert ws["B1"].value == "last_changed_at (Asia/Seoul)" and ws["B2"].value == local
    text = joined(engine.export(spec, "csv", tz="Asia/Seoul").chunks).decode()
    assert text.splitlines()[0] == '"feature_name","last_changed_at (Asia/Seoul)"'
    assert text.splitlines()[1].endswith("," + local.isoformat(sep=" "))
    raw = joined(engine.export(spec, "csv").chunks).decode()  # without a zone: as before
    assert raw.splitlines()[0] == '"feature_name","last_changed_at"'
    assert raw.splitlines()[1].endswith(",2026-11-06 09:00:00+00")


def test_xlsx_through_the_engine_refuses_more_rows_than_a_sheet_holds(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsxrows, "XLSX_MAX_ROWS", 3)
    with pytest.raises(ExportError) as info:
        joined(engine.export(QuerySpec(), "xlsx").chunks)
    assert "more than 2 rows" in str(info.value)
