"""Source readers: every kind becomes a text table with row numbers; every failure names the source.

Real files in tmp_path, a real HTTP server on a loopback ephemeral port and a real PostgreSQL
(pgserver); no mocks.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from fmw.errors import SourceError, TransientSourceError
from fmw.settings import SourceConfig
from ledger.sources import ROW_COLUMN, SourceTable, read_source
from ledger.sources.base import SourceLimits
from ledger.sources.convert import normalize_headers, to_text

KOREAN = "서울 운영팀"


def source(kind: str, path: Path | None = None, **kw: Any) -> SourceConfig:
    return SourceConfig(name="src", kind=kind, path=path, **kw)  # type: ignore[arg-type]


def rows(st: SourceTable) -> list[dict[str, Any]]:
    return st.table.to_pylist()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- value and header rules --------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("  kept as is ", "  kept as is "),
    (310, "310"),
    (310.0, "310"),
    (-0.0, "0"),
    (12.5, "12.5"),
    (0.1, "0.1"),
    (1e20, "1e+20"),
    (float("nan"), None),
    (True, "true"),
    (False, "false"),
    (Decimal("1.50"), "1.50"),
    (dt.datetime(2026, 1, 31, 10), "2026-01-31T10:00:00"),
    (dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone(dt.timedelta(hours=9))),
     "2026-01-31T10:00:00+09:00"),
    (dt.date(2026, 1, 31), "2026-01-31"),
    ({"a": [1, "서"]}, '{"a":[1,"서"]}'),
    (None, None),
])
def test_values_become_text(value: Any, expected: str | None) -> None:
    assert to_text(value) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ([" name ", "value"], ["name", "value"]),
    (["a", "", None, "  "], ["a", "column_2", "column_3", "column_4"]),
    (["a", "a", "a"], ["a", "a_2", "a_3"]),
    (["a", "a", "a_2"], ["a", "a_3", "a_2"]),
    (["__row", "x"], ["__row_2", "x"]),
])
def test_headers_are_trimmed_named_and_deduplicated(raw: list[Any], expected: list[str]) -> None:
    assert normalize_headers(raw) == expected


# --- csv ---------------------------------------------------------------------------------------

CSV_TEXT = f" feature , owner ,owner,\nF1,{KOREAN},  ,x\n\"multi\nline\",,b,\n"


@pytest.mark.parametrize(("file_encoding", "configured"), [
    ("utf-8", "auto"), ("utf-8-sig", "auto"), ("cp949", "auto"),
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp949", "cp949"), ("cp949", "euc-kr"),
])
def test_csv_decodes_utf8_bom_and_cp949(tmp_path: Path, file_encoding: str, configured: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(CSV_TEXT.encode(file_encoding))
    st = read_source(source("csv", path, encoding=configured))
    assert st.table.column_names == [ROW_COLUMN, "feature", "owner", "owner_2", "column_4"]
    assert st.table.schema.types == [pa.int64()] + [pa.string()] * 4
    assert rows(st) == [
        {ROW_COLUMN: 2, "feature": "F1", "owner": KOREAN, "owner_2": None, "column_4": "x"},
        {ROW_COLUMN: 3, "feature": "multi\nline", "owner": None, "owner_2": "b", "column_4": None},
    ]
    assert st.location == str(path) and st.rows_read == 2


def test_csv_keeps_text_verbatim_and_uses_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("mcc;mnc;value\n450;05;310.0\n\n450;08;1,5\n", encoding="utf-8")
    st = read_source(source("csv", path, delimiter=";"))
    assert rows(st) == [
        {ROW_COLUMN: 2, "mcc": "450", "mnc": "05", "value": "310.0"},
        {ROW_COLUMN: 3, "mcc": "450", "mnc": "08", "value": "1,5"},
    ]


def test_csv_with_only_a_header_is_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("a,b\n", encoding="utf-8")
    st = read_source(source("csv", path, columns=(("feature_name", "a"),)))
    assert st.table.column_names == [ROW_COLUMN, "a", "b"] and st.table.num_rows == 0


def test_csv_row_longer_than_a_parse_block_is_read(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    long_value = "x\n" * (5 << 20)
    path.write_text(f'a,b\n1,"{long_value}"\n2,3\n', encoding="utf-8", newline="\n")
    st = read_source(source("csv", path), SourceLimits(max_cell_bytes=16 << 20))
    assert st.table.column(ROW_COLUMN).to_pylist() == [2, 3]
    assert st.table.column("b")[0].as_py() == long_value


@pytest.mark.parametrize(("encoding", "reason"), [
    ("auto", "not valid UTF-8 or CP949"),
    ("utf-8", "not valid UTF-8"),
    ("cp949", "not valid cp949"),
])
def test_mis_encoded_bytes_name_file_line_and_offset(tmp_path: Path, encoding: str,
                                                     reason: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xff\xfe\xfa\n4,5\n")
    with pytest.raises(SourceError) as info:
        read_source(source("csv", path, encoding=encoding))
    message = str(info.value)
    assert reason in message and str(path) in message
    assert "line 3" in message and "byte offset 10" in message and "0xff" in message


def test_bom_file_with_bad_utf8_is_not_guessed_as_cp949(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfa\n" + KOREAN.encode("cp949") + b"\n")
    with pytest.raises(SourceError, match=r"not valid UTF-8: .* line 2"):
        read_source(source("csv", path))


@pytest.mark.parametrize(("body", "row", "fields"), [
    ("a,b,c\n1,2,3\n4,5\n", 3, "has 2 fields, expected 3"),
    ('a,b\n"x\ny",2\n\n3,4,5\n', 3, "has 3 fields, expected 2"),
])
def test_ragged_csv_row_names_file_and_row(tmp_path: Path, body: str, row: int,
                                           fields: str) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(source("csv", path))
    assert info.value.row == row and fields in info.value.reason
    assert f"({path}), row {row}:" in str(info.value)


def test_ragged_row_deep_in_a_large_csv_reports_its_row(tmp_path: Path) -> None:
    """Regression: multi-threaded pyarrow parsing drops the row number from its error."""
    path = tmp_path / "large.csv"
    good = "".join(f"{i},x,y\n" for i in range(300_000))
    path.write_text("a,b,c\n" + good + "1,2\n" + good, encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(source("csv", path))
    assert info.value.row == 300_002


# --- failures shared by file kinds -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["csv", "json", "jsonl", "xlsx", "parquet"])
def test_missing_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"nope.{kind}"
    with pytest.raises(SourceError, match="file not found") as info:
        read_source(source(kind, path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["csv", "json", "jsonl", "xlsx", "parquet"])
def test_empty_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"empty.{kind}"
    path.write_bytes(b"")
    with pytest.raises(SourceError, match="file is empty") as info:
        read_source(source(kind, path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("kind", "content", "reason"), [
    ("xlsx", b"PK\x03\x04 not really a zip", "not a readable .xlsx file"),
    ("parquet", b"PAR1 garbage", "not a readable Parquet file"),
])
def test_corrupt_binary_files(tmp_path: Path, kind: str, content: bytes, reason: str) -> None:
    path = tmp_path / f"bad.{kind}"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=reason):
        read_source(source(kind, path))


@pytest.mark.parametrize(("kind", "content"), [
    ("csv", "Feature Name,mcc\nx,450\n"),
    ("json", '[{"Feature Name": "x", "mcc": 450}]'),
    ("jsonl", '{"Feature Name": "x", "mcc": 450}\n'),
])
def test_missing_mapped_column_lists_source_columns(tmp_path: Path, kind: str,
                                                    content: str) -> None:
    path = tmp_path / f"m.{kind}"
    path.write_text(content, encoding="utf-8")
    cfg = source(kind, path, columns=(("feature_name", "Foo"), ("mcc", "mcc")))
    with pytest.raises(SourceError) as info:
        read_source(cfg)
    assert ("mapped column 'Foo' (for feature_name) not found; "
            "columns in source: Feature Name, mcc") in str(info.value)
    assert str(path) in str(info.value)


# --- xlsx --------------------------------------------------------------------------------------

def write_xlsx(path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Intro"
    sheet["A1"] = "not this one"
    data = book.create_sheet("Status")
    data.append([])  # row 1 empty: the header is the first non-empty row
    data.append([" feature ", "mcc", "since", "checked", "share", "live", None, "team"])
    data.append(["F1", 450, dt.date(2026, 1, 31), dt.datetime(2026, 1, 31, 10, 0), 310.0, True,
                 None, KOREAN])
    data.append([None, None, None])  # empty row: skipped
    data.append(["F2", 450.5, None, None, 0.25, False, "extra", "   "])
    book.save(path)


def test_xlsx_reads_sheet_with_dates_numbers_and_sheet_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    write_xlsx(path)
    st = read_source(source("xlsx", path, sheet="Status"))
    assert rows(st) == [
        {ROW_COLUMN: 3, "feature": "F1", "mcc": "450", "since": "2026-01-31",
         "checked": "2026-01-31T10:00:00", "share": "310", "live": "true", "column_7": None,
         "team": KOREAN},
        {ROW_COLUMN: 5, "feature": "F2", "mcc": "450.5", "since": None, "checked": None,
         "share": "0.25", "live": "false", "column_7": "extra", "team": None},
    ]


def test_xlsx_defaults_to_first_sheet(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    write_xlsx(path)
    st = read_source(source("xlsx", path))
    assert st.table.column_names == [ROW_COLUMN, "not this one"] and st.table.num_rows == 0


def test_xlsx_missing_sheet_lists_sheet_names(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    write_xlsx(path)
    with pytest.raises(SourceError, match="sheet 'Nope' not found; sheets in workbook: Intro, Status"):
        read_source(source("xlsx", path, sheet="Nope"))


# --- json / jsonl ------------------------------------------------------------------------------

def test_json_records_path_union_of_keys_and_nested_values(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    doc = {"data": {"items": [
        {"name": "F1", "mcc": 450, "share": 310.0, "tags": ["a", "b"]},
        {"name": "F2", "extra": {"k": 1}, "mcc": None, "share": 0.5},
        {"name": {"nested": True}},
        "not an object",
        {"name": " ", "mcc": 451},
    ]}}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    st = read_source(source("json", path, records_path="data.items",
                            columns=(("feature_name", "name"),)))
    assert rows(st) == [
        {ROW_COLUMN: 1, "name": "F1", "mcc": "450", "share": "310", "tags": '["a","b"]',
         "extra": None},
        {ROW_COLUMN: 2, "name": "F2", "mcc": None, "share": "0.5", "tags": None,
         "extra": '{"k":1}'},
        {ROW_COLUMN: 5, "name": None, "mcc": "451", "share": None, "tags": None, "extra": None},
    ]
    assert [(e.row, e.reason) for e in st.row_errors] == [
        (3, "column 'name': expected a scalar, got object"),
        (4, "expected an object, got string"),
    ]
    assert st.row_errors[0].raw["name"] == '{"nested":true}' and st.rows_read == 5


@pytest.mark.parametrize(("content", "records_path", "reason"), [
    ('[{"a": 1},\n {"a": 2,}]', None, "invalid JSON at line 2"),
    ('{"data": []}', None, "expected a top-level array of objects, got object; set records_path"),
    ('{"data": {"x": []}}', "data.items", "records_path 'data.items': no key 'items' under data"),
    ('{"data": {"items": 3}}', "data.items", "records_path 'data.items' holds number"),
])
def test_json_document_errors(tmp_path: Path, content: str, records_path: str | None,
                              reason: str) -> None:
    path = tmp_path / "doc.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match=reason) as info:
        read_source(source("json", path, records_path=records_path))
    assert str(path) in str(info.value)


def test_json_in_cp949_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "kr.json"
    path.write_bytes(json.dumps([{"owner": KOREAN}], ensure_ascii=False).encode("cp949"))
    assert rows(read_source(source("json", path))) == [{ROW_COLUMN: 1, "owner": KOREAN}]


def test_jsonl_rows_are_line_numbers_and_a_bad_line_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"name": "F1", "v": 1}\n\n[1, 2]\n{"name": "F2", "w": true}\n',
                    encoding="utf-8")
    st = read_source(source("jsonl", path, columns=(("feature_name", "name"),)))
    assert rows(st) == [
        {ROW_COLUMN: 1, "name": "F1", "v": "1", "w": None},
        {ROW_COLUMN: 4, "name": "F2", "v": None, "w": "true"},
    ]
    assert [(e.row, e.reason, e.raw) for e in st.row_errors] == [
        (3, "expected an object, got array", {"value": "[1,2]"})]


def test_jsonl_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(source("jsonl", path))
    assert info.value.row == 2 and "invalid JSON at line 2" in str(info.value)
    assert str(path) in str(info.value)


# --- parquet -----------------------------------------------------------------------------------

def test_parquet_columns_become_text(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    utc = dt.UTC
    pq.write_table(pa.table({
        "mcc": pa.array([450, None], pa.int32()),
        "share": [310.0, 0.25],
        "f32": pa.array([0.1, float("nan")], pa.float32()),
        "at": pa.array([dt.datetime(2026, 1, 31, 10), dt.datetime(1969, 12, 31, 23, 59, 59, 500)],
                       pa.timestamp("us")),
        "at_utc": pa.array([dt.datetime(2026, 1, 31, 10, tzinfo=utc), None],
                           pa.timestamp("ms", tz="UTC")),
        "at_seoul": pa.array([dt.datetime(2026, 1, 31, 1, tzinfo=utc), None],
                             pa.timestamp("s", tz="Asia/Seoul")),
        "day": pa.array([dt.date(2026, 1, 31), None], pa.date32()),
        "live": [True, False],
        "price": pa.array([Decimal("1.50"), None], pa.decimal128(5, 2)),
        "team": pa.array([KOREAN, "  "]).dictionary_encode(),
        "tags": [["a"], None],
    }), path)
    st = read_source(source("parquet", path))
    assert rows(st) == [
        {ROW_COLUMN: 1, "mcc": "450", "share": "310", "f32": "0.1", "at": "2026-01-31T10:00:00",
         "at_utc": "2026-01-31T10:00:00+00:00", "at_seoul": "2026-01-31T10:00:00+09:00",
         "day": "2026-01-31", "live": "true", "price": "1.50", "team": KOREAN, "tags": '["a"]'},
        {ROW_COLUMN: 2, "mcc": None, "share": "0.25", "f32": None,
         "at": "1969-12-31T23:59:59.000500", "at_utc": None, "at_seoul": None, "day": None,
         "live": "false", "price": None, "team": None, "tags": None},
    ]


def test_parquet_nested_value_in_mapped_column_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"name": ["F1", "F2", "F3"],
                             "status": [None, {"on": True}, {"on": False}]}), path)
    st = read_source(source("parquet", path, columns=(("status", "status"),)))
    assert rows(st) == [{ROW_COLUMN: 1, "name": "F1", "status": None}]
    assert [(e.row, e.reason, e.raw) for e in st.row_errors] == [
        (2, "column 'status': expected a scalar, got object", {"name": "F2", "status": '{"on":true}'}),
        (3, "column 'status': expected a scalar, got object", {"name": "F3", "status": '{"on":false}'}),
    ]


# --- http --------------------------------------------------------------------------------------

ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/features.json": (200, "application/json",
                       json.dumps({"items": [{"name": "F1", "owner": KOREAN, "n": 2.0}]},
                                  ensure_ascii=False).encode()),
    "/features.csv": (200, "text/csv; charset=cp949", f"name,owner\nF1,{KOREAN}\n".encode("cp949")),
    "/plain": (200, "text/plain", b"name\nF9\n"),
    "/broken": (503, "text/plain", b"down"),
    "/empty": (200, "application/json", b""),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/slow":
            time.sleep(1.0)  # the client times out first and hangs up
            return
        if self.path == "/secure" and self.headers.get("X-Token") != "s3cret":
            self.send_error(401)
            return
        path = "/features.json" if self.path == "/secure" else self.path
        if path not in ROUTES:
            self.send_error(404)
            return
        status, content_type, body = ROUTES[path]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def web(url: str, **kw: Any) -> SourceConfig:
    return SourceConfig(name="web", kind="http", url=url, **kw)


@pytest.mark.parametrize(("route", "kw", "expected"), [
    ("/features.json", {"records_path": "items"},
     [{ROW_COLUMN: 1, "name": "F1", "owner": KOREAN, "n": "2"}]),
    ("/secure", {"records_path": "items", "headers": (("X-Token", "s3cret"),)},
     [{ROW_COLUMN: 1, "name": "F1", "owner": KOREAN, "n": "2"}]),
    ("/features.csv", {}, [{ROW_COLUMN: 2, "name": "F1", "owner": KOREAN}]),
    ("/plain", {"format": "csv"}, [{ROW_COLUMN: 2, "name": "F9"}]),
])
def test_http_bodies(http_base: str, route: str, kw: dict[str, Any],
                     expected: list[dict[str, Any]]) -> None:
    st = read_source(web(http_base + route, **kw))
    assert rows(st) == expected and st.location == http_base + route


@pytest.mark.parametrize(("route", "kw", "error", "reason"), [
    ("/missing", {}, SourceError, "HTTP 404 Not Found"),
    ("/secure", {}, SourceError, "HTTP 401 Unauthorized"),
    ("/broken", {}, TransientSourceError, "HTTP 503 Service Unavailable"),
    ("/slow", {"timeout_s": 0.2}, TransientSourceError, "timed out"),
    ("/empty", {}, SourceError, "response body is empty"),
])
def test_http_errors(http_base: str, route: str, kw: dict[str, Any], error: type[Exception],
                     reason: str) -> None:
    with pytest.raises(error, match=reason) as info:
        read_source(web(http_base + route, **kw))
    assert http_base + route in str(info.value)
    if error is SourceError:
        assert not isinstance(info.value, TransientSourceError)


def test_http_connection_refused_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/features.json"
    with pytest.raises(TransientSourceError, match="cannot connect") as info:
        read_source(web(url, timeout_s=5))
    assert url in str(info.value)


# --- sql ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("create sequence ticket"))
        conn.execute(text("""
            create table features (
                name text, owner text, mcc integer, share double precision, price numeric(5,2),
                live boolean, since date, checked timestamp, seen timestamptz, extra jsonb)"""))
        conn.execute(text("""
            insert into features values
            ('F1', :owner, 450, 310.0, 1.50, true, '2026-01-31', '2026-01-31 10:00:00',
             '2026-01-31 10:00:00+00', '{"k": [1]}'),
            ('F2', '  ', null, 0.25, null, false, null, null, null, '"plain"')"""),
            {"owner": KOREAN})
    engine.dispose()
    yield url
    server.cleanup()


def test_sql_query_rows_become_text(pg_url: str) -> None:
    query = "select *, 'a:b' as colon, 5 % 3 as pct from features order by name"
    st = read_source(SourceConfig(name="db", kind="sql", url=pg_url, query=query,
                                  columns=(("feature_name", "name"),)))
    got = rows(st)
    seen = got[0].pop("seen")
    assert dt.datetime.fromisoformat(seen) == dt.datetime(2026, 1, 31, 10, tzinfo=dt.UTC)
    assert got == [
        {ROW_COLUMN: 1, "name": "F1", "owner": KOREAN, "mcc": "450", "share": "310",
         "price": "1.50", "live": "true", "since": "2026-01-31", "checked": "2026-01-31T10:00:00",
         "extra": '{"k":[1]}', "colon": "a:b", "pct": "2"},
        {ROW_COLUMN: 2, "name": "F2", "owner": None, "mcc": None, "share": "0.25", "price": None,
         "live": "false", "since": None, "checked": None, "seen": None, "extra": "plain",
         "colon": "a:b", "pct": "2"},
    ]


def test_sql_streams_batches_with_continuous_row_numbers(pg_url: str) -> None:
    query = "select g as n from generate_series(1, 25001) as g"
    st = read_source(SourceConfig(name="db", kind="sql", url=pg_url, query=query))
    assert st.table.num_rows == 25001
    assert st.table.column(ROW_COLUMN).to_pylist() == list(range(1, 25002))
    assert st.table.column("n")[25000].as_py() == "25001"


def test_sql_nested_value_in_mapped_column_is_a_row_error(pg_url: str) -> None:
    query = "select name, extra from features order by name"
    st = read_source(SourceConfig(name="db", kind="sql", url=pg_url, query=query,
                                  columns=(("value", "extra"),)))
    assert rows(st) == [{ROW_COLUMN: 2, "name": "F2", "extra": "plain"}]
    assert [(e.row, e.reason, e.raw) for e in st.row_errors] == [
        (1, "column 'extra': expected a scalar, got object", {"name": "F1", "extra": '{"k":[1]}'})]


@pytest.mark.parametrize(("query", "columns", "reason"), [
    ("select * from no_such_table", (), 'query failed: relation "no_such_table" does not exist'),
    ("select name from features", (("feature_name", "Name"),),
     "mapped column 'Name' (for feature_name) not found; columns in source: name"),
    ("select nextval('ticket')", (), "cannot execute nextval() in a read-only transaction"),
])
def test_sql_errors_carry_the_database_message(pg_url: str, query: str,
                                               columns: tuple[tuple[str, str], ...],
                                               reason: str) -> None:
    with pytest.raises(SourceError, match=re.escape(reason)) as info:
        read_source(SourceConfig(name="db", kind="sql", url=pg_url, query=query, columns=columns))
    assert not isinstance(info.value, TransientSourceError)


def test_sql_unreachable_database_is_transient_and_hides_the_password() -> None:
    url = f"postgresql+psycopg://fmw:topsecret@127.0.0.1:{free_port()}/fmw"
    with pytest.raises(TransientSourceError, match="cannot connect to database") as info:
        read_source(SourceConfig(name="db", kind="sql", url=url, query="select 1", timeout_s=5))
    assert "topsecret" not in str(info.value) and "fmw:***@127.0.0.1" in str(info.value)
