"""Issue 11 §3: one bad cell never blocks a source; a bad file ends with a reason naming it.

Each test pins one bug found in the hardening review; the name says which.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fmw.errors import SourceError, SyncFailed
from fmw.settings import SourceConfig
from ledger.db import connect
from ledger.sources import ROW_COLUMN, read_source
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import HEADER, csv_source, features, run_errors


def sync(s: Any) -> Any:
    return run_sync(s, plan_sync(s, trigger="test"))


def source(kind: str, path: Path | None = None, **kw: Any) -> SourceConfig:
    return SourceConfig(name="src", kind=kind, path=path, **kw)  # type: ignore[arg-type]


def csv_bytes(lines: list[str]) -> bytes:
    return ("\n".join([",".join(HEADER), *lines]) + "\n").encode("utf-8")


def good_lines(n: int) -> list[str]:
    return [f"volte,F{i},450,{i:02d},enabled,,," for i in range(n)]


# --- 1. NUL bytes --------------------------------------------------------------------------------

def test_nul_byte_in_a_cell_no_longer_fails_the_run_with_a_database_error(make_settings, tmp_path):
    """Regression: a NUL in one cell failed the whole run ("database error ... 0x00")."""
    path = tmp_path / "a.csv"
    path.write_bytes(csv_bytes([
        *good_lines(40),
        "volte,Vo\x00LTE,450,90,enabled,,,",         # identity field: quarantined
        "volte,F90,450,91,en\x00abled,1\x002,ops\x00,",  # other fields: NUL stripped
    ]))
    s = make_settings(csv_source("a", path))
    r = sync(s)
    assert r.status == "partial"
    assert (r.counts["rows_read"], r.counts["rows_bad"], r.counts["created"]) == (42, 1, 41)
    with connect(s) as conn:
        (e,) = run_errors(conn, r.run_id)
        stored = features(conn)[("volte", "F90", "450", "91")]
    assert (e["source"], e["row_no"], e["kind"]) == ("a", 42, "invalid")
    assert "identity field feature_name contains a control character" in e["reason"]
    assert e["raw"]["Feature"] == "Vo\u2400LTE"  # NUL shown as U+2400, jsonb cannot hold it
    assert (stored["status"], stored["value"], stored["owner"]) == ("enabled", "12", "ops")


def test_nul_byte_in_a_header_or_unmapped_column_is_stripped(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"name,no\x00te\nF1,a\x00b\n")
    st = read_source(source("csv", path, columns=(("feature_name", "name"),)))
    assert st.table.to_pylist() == [{ROW_COLUMN: 2, "name": "F1", "note": "ab"}]


# --- 2. mixed encodings ----------------------------------------------------------------------------

def test_csv_mixing_utf8_and_cp949_is_refused_not_read_as_mojibake(tmp_path):
    """Regression: "café" (UTF-8) next to CP949 rows was read as CP949: "caf챕", run succeeded."""
    path = tmp_path / "mixed.csv"
    path.write_bytes("name,owner\nF1,café\nF2,x\n".encode()
                     + "F3,서울 운영팀\n".encode("cp949"))
    with pytest.raises(SourceError) as info:
        read_source(source("csv", path))
    message = str(info.value)
    assert str(path) in message and "'src'" in message
    assert "mixed encodings" in message and "line 4" in message and "line 2" in message


@pytest.mark.parametrize(("data", "expected"), [
    ("name,owner\nF1,서울 운영팀\n".encode("cp949"), "서울 운영팀"),
    ("name,owner\nF1,café\n".encode(), "café"),
    (b"\xef\xbb\xbf" + "name,owner\nF1,caf\u00e9\n".encode(), "café"),
])
def test_auto_encoding_still_reads_files_in_one_encoding(tmp_path, data, expected):
    path = tmp_path / "one.csv"
    path.write_bytes(data)
    assert read_source(source("csv", path)).table.column("owner").to_pylist() == [expected]


def test_mixed_file_is_read_when_the_encoding_is_configured(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"name,owner\n" + "F3,서울\n".encode("cp949"))
    # Configured explicitly, the admin decides; auto would have read this too (no UTF-8 line).
    assert read_source(source("csv", path, encoding="cp949")).table.column("owner").to_pylist() \
        == ["서울"]


# --- 3. deep JSON ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "text", "line"), [
    ("json", '[{"a": 1},\n{"b": ' + "[" * 200_000 + "]" * 200_000 + "}]", 2),
    ("jsonl", '{"a": 1}\n{"a": 2}\n{"b": ' + "{\"x\": " * 200_000 + "1" + "}" * 200_001 + "\n", 3),
])
def test_deeply_nested_json_fails_naming_source_file_and_line(tmp_path, kind, text, line):
    """Regression: 200,000 nested arrays failed with only "maximum recursion depth exceeded"."""
    path = tmp_path / f"deep.{kind}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(source(kind, path))
    message = str(info.value)
    assert str(path) in message and "'src'" in message
    assert "nested deeper than 64 levels" in message and f"line {line}" in message
    assert "recursion" not in message


def test_json_nested_to_the_limit_is_read(tmp_path):
    path = tmp_path / "ok.json"
    inner = "[" * 62 + "]" * 62  # 62 + the record object + the top-level array = 64
    path.write_text(f'[{{"a": {inner}}}]', encoding="utf-8")
    assert read_source(source("json", path)).table.num_rows == 1


def test_brackets_inside_json_strings_do_not_count_as_nesting(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"a": "[" * 500 + '\\"{'}) + "\n", encoding="utf-8")
    assert read_source(source("jsonl", path)).table.column("a")[0].as_py().startswith("[[[")


def test_deep_json_run_failure_names_source_and_file(make_settings, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    s = make_settings(f'[[sources]]\nname = "deep"\nkind = "json"\npath = "{path.as_posix()}"\n')
    with pytest.raises(SyncFailed) as info:
        sync(s)
    assert "source 'deep'" in str(info.value) and str(path) in str(info.value)
    with connect(s) as conn:
        row = conn.execute("SELECT error_summary FROM runs WHERE id = %s",
                           (info.value.run_id,)).fetchone()
    assert row is not None
    summary = row[0]
    assert "source 'deep'" in summary and str(path) in summary and "nested deeper" in summary


# --- 4. http credentials ---------------------------------------------------------------------------

class Recorder(BaseHTTPRequestHandler):
    """Records each request's headers; `/to?u=URL` redirects there, `/data` answers JSON."""

    seen: list[tuple[str, Any]] = []  # (host:port + path, the request's headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append((f"{self.headers['Host']}{self.path}", self.headers))
        if self.path.startswith("/to?u="):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/to?u="))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/basic"):
            want = "Basic " + base64.b64encode(b"user:p@ss w").decode()
            if self.headers.get("Authorization") != want:
                self.send_error(401)
                return
        if not self.path.startswith(("/data", "/basic")):
            self.send_error(404)
            return
        body = b'[{"name": "F1"}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    """Two real servers on 127.0.0.1: different ports are different origins."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Recorder) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.seen = []
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


SECRET_HEADERS = (("Authorization", "Bearer t0ps3cret"), ("X-Api-Key", "k3y"))


def test_redirect_to_another_host_drops_credentials(two_hosts):
    """Regression: a redirect to another host received the source's Authorization header."""
    a, b = two_hosts
    st = read_source(SourceConfig(name="web", kind="http", url=f"{a}/to?u={b}/data",
                                  headers=SECRET_HEADERS))
    assert st.table.column("name").to_pylist() == ["F1"]
    (_, first), (_, second) = Recorder.seen
    assert first["Authorization"] == "Bearer t0ps3cret" and first["X-Api-Key"] == "k3y"
    assert "Authorization" not in second and "X-Api-Key" not in second


def test_redirect_on_the_same_host_keeps_credentials(two_hosts):
    a, _ = two_hosts
    read_source(SourceConfig(name="web", kind="http", url=f"{a}/to?u={a}/data",
                             headers=SECRET_HEADERS))
    assert [h.get("X-Api-Key") for _, h in Recorder.seen] == ["k3y", "k3y"]


def test_user_and_password_in_the_url_are_sent_as_basic_auth_and_never_shown(two_hosts):
    a, b = two_hosts
    host = a.removeprefix("http://")
    cfg = SourceConfig(name="web", kind="http", url=f"http://user:p%40ss%20w@{host}/basic")
    assert read_source(cfg).table.num_rows == 1
    assert "p%40ss" not in cfg.location and "***" in cfg.location
    # ... and dropped when redirected to another host
    hop = SourceConfig(name="web", kind="http", url=f"http://user:p%40ss%20w@{host}/to?u={b}/basic")
    with pytest.raises(SourceError, match="HTTP 401") as info:
        read_source(hop)
    assert "p%40ss" not in str(info.value) and "Authorization" not in Recorder.seen[-1][1]


def test_redirect_to_a_scheme_other_than_http_is_refused(two_hosts):
    """Regression: urllib followed a redirect to ftp:// (with the source's credentials)."""
    a, _ = two_hosts
    cfg = SourceConfig(name="web", kind="http", url=f"{a}/to?u=ftp://127.0.0.1:9/x", timeout_s=5)
    with pytest.raises(SourceError, match="redirected to a URL that is not http") as info:
        read_source(cfg)
    assert a in str(info.value)


@pytest.mark.parametrize("param", ["api_key", "token", "client_secret", "password", "Signature",
                                   "auth", "X-Amz-Credential"])
def test_secret_query_parameters_are_redacted_in_errors(two_hosts, param):
    a, _ = two_hosts
    cfg = SourceConfig(name="web", kind="http", url=f"{a}/missing?page=2&{param}=SeCrEt9&x=1")
    with pytest.raises(SourceError, match="HTTP 404") as info:
        read_source(cfg)
    assert "SeCrEt9" not in str(info.value) and "SeCrEt9" not in cfg.location
    assert f"page=2&{param}=***&x=1" in cfg.location


# --- 5. limits -------------------------------------------------------------------------------------

def test_cell_above_the_size_limit_quarantines_its_row_and_the_rest_applies(make_settings,
                                                                          tmp_path):
    """Regression: there was no cell limit; a huge cell went into the ledger as it was."""
    path = tmp_path / "a.csv"
    path.write_bytes(csv_bytes([*good_lines(40), "volte,F99,450,99,enabled,," + "x" * 5000 + ","]))
    s = make_settings(csv_source("a", path), FMW_SOURCE_MAX_CELL_BYTES="1024")
    r = sync(s)
    assert (r.status, r.counts["rows_bad"], r.counts["created"]) == ("partial", 1, 40)
    with connect(s) as conn:
        (e,) = run_errors(conn, r.run_id)
    assert e["row_no"] == 42
    assert "cell in column 'Owner' is 5,000 bytes, above the limit of 1,024" in e["reason"]
    assert e["raw"]["Owner"].endswith("... (5,000 bytes)") and len(e["raw"]["Owner"]) < 300


def test_too_many_columns_fails_the_source_naming_the_file(make_settings, tmp_path):
    path = tmp_path / "wide.csv"
    extra = [f"x{i}" for i in range(20)]
    path.write_text(",".join([*HEADER, *extra]) + "\n" + ",".join(
        ["volte", "F1", "450", "01", "on", "", "", ""] + ["1"] * 20) + "\n", encoding="utf-8")
    s = make_settings(csv_source("wide", path), FMW_SOURCE_MAX_COLUMNS="10")
    with pytest.raises(SyncFailed, match=r"source 'wide' \(.*wide\.csv\): has 28 columns, "
                                         r"above the limit of 10 \(source_max_columns\)"):
        sync(s)


@pytest.mark.parametrize("kind", ["json", "jsonl", "xlsx", "parquet"])
def test_too_many_columns_fails_every_file_kind(tmp_path, kind):
    import openpyxl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ledger.sources.base import SourceLimits
    record = {f"c{i}": str(i) for i in range(12)}
    path = tmp_path / f"wide.{kind}"
    if kind == "json":
        path.write_text(json.dumps([record]), encoding="utf-8")
    elif kind == "jsonl":
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    elif kind == "parquet":
        pq.write_table(pa.table({k: [v] for k, v in record.items()}), path)
    else:
        book = openpyxl.Workbook()
        book.active.append(list(record))
        book.save(path)
    with pytest.raises(SourceError, match="12 columns, above the limit of 10") as info:
        read_source(source(kind, path), SourceLimits(max_columns=10))
    assert str(path) in str(info.value)


def _xlsx(path: Path, rows: int, padding: int = 0) -> Path:
    import zipfile

    import openpyxl
    book = openpyxl.Workbook()
    for i in range(rows):
        book.active.append([f"F{i}", "450"])
    book.save(path)
    if padding:
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("xl/media/padding.bin", b"\0" * padding)  # compresses to ~KB
    return path


def test_xlsx_zip_bomb_is_refused_before_it_is_unpacked(make_settings, tmp_path):
    """Regression: a workbook's unpacked size was not checked (a zip bomb unpacked fully)."""
    path = _xlsx(tmp_path / "bomb.xlsx", 3, padding=3 << 20)
    assert path.stat().st_size < 100_000
    s = make_settings(f'[[sources]]\nname = "x"\nkind = "xlsx"\npath = "{path.as_posix()}"\n',
                      FMW_XLSX_MAX_UNPACKED_MB="1")
    with pytest.raises(SyncFailed, match=r"source 'x' \(.*bomb\.xlsx\): unpacks to 3 MB, above "
                                         r"the limit of 1 MB \(xlsx_max_unpacked_mb\)"):
        sync(s)


def test_xlsx_with_too_many_rows_fails_naming_the_file(make_settings, tmp_path):
    path = _xlsx(tmp_path / "long.xlsx", 10)
    s = make_settings(f'[[sources]]\nname = "x"\nkind = "xlsx"\npath = "{path.as_posix()}"\n',
                      FMW_XLSX_MAX_ROWS="5")
    with pytest.raises(SyncFailed, match=r"long\.xlsx\): sheet has more than 5 rows"):
        sync(s)


def test_quarantined_rows_above_the_limit_are_counted_not_stored(make_settings, tmp_path):
    """Regression: every quarantined row was stored, however many a broken export had."""
    path = tmp_path / "a.csv"
    path.write_bytes(csv_bytes([*good_lines(40), *(f"volte,,450,{70 + i},on,,," for i in range(12))]))
    s = make_settings(csv_source("a", path), FMW_SOURCE_MAX_STORED_ERRORS="5",
                      FMW_MAX_BAD_SHARE="0.5")
    r = sync(s)
    assert (r.status, r.counts["rows_bad"], r.counts["created"]) == ("partial", 12, 40)
    with connect(s) as conn:
        stored = run_errors(conn, r.run_id)
    assert [e["row_no"] for e in stored] == [42, 43, 44, 45, 46]
    assert r.source_stats["a"]["errors_not_stored"] == 7


def test_stored_row_limit_counts_reader_and_sql_quarantine_together(make_settings, tmp_path):
    path = tmp_path / "a.csv"
    bad_reader = [f"volte,N\x00{i},450,{60 + i},on,,," for i in range(3)]  # reader: NUL
    bad_sql = [f"volte,,450,{70 + i},on,,," for i in range(12)]  # SQL: missing feature name
    path.write_bytes(csv_bytes([*good_lines(40), *bad_reader, *bad_sql]))
    s = make_settings(csv_source("a", path), FMW_SOURCE_MAX_STORED_ERRORS="5",
                      FMW_MAX_BAD_SHARE="0.5")
    r = sync(s)
    assert (r.status, r.counts["rows_bad"], r.counts["created"]) == ("partial", 15, 40)
    assert r.source_stats["a"]["errors_not_stored"] == 10
    with connect(s) as conn:
        stored = run_errors(conn, r.run_id)
        row = conn.execute("SELECT error_summary, source_stats FROM runs WHERE id = %s",
                           (r.run_id,)).fetchone()
    assert row is not None
    assert [e["row_no"] for e in stored] == [42, 43, 44, 45, 46]
    assert "10 of source 'a'" in row[0] and row[1]["a"]["errors_not_stored"] == 10


# --- 6. where source files may be, and what a failed read shows -----------------------------------

def _working_link(link: Path, target: Path) -> bool:
    """Make `link` -> `target`; False where this platform cannot (Windows without the
    privilege to create links, or Wine, whose links do not resolve for the Windows Python)."""
    try:
        link.symlink_to(target)
        return link.read_bytes() == target.read_bytes()
    except OSError:
        return False


def test_symlinked_source_is_refused_unless_allowed(make_settings, tmp_path):
    """Regression: a source path that was a symbolic link was followed without question."""
    real = tmp_path / "real.csv"
    real.write_bytes(csv_bytes(good_lines(3)))
    link = tmp_path / "link.csv"
    if not _working_link(link, real):
        pytest.skip("symbolic links cannot be made or do not resolve here (Windows without "
                    "the privilege, or Wine)")
    s = make_settings(csv_source("a", link))
    with pytest.raises(SyncFailed, match=r"link\.csv\): is a symbolic link; refused unless "
                                         "source_allow_symlinks = true"):
        sync(s)
    allowed = make_settings(csv_source("a", link), FMW_SOURCE_ALLOW_SYMLINKS="true")
    assert sync(allowed).counts["created"] == 3


def test_source_outside_source_roots_is_refused(make_settings, tmp_path):
    inside, outside = tmp_path / "feeds", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    ok = inside / "a.csv"
    ok.write_bytes(csv_bytes(good_lines(2)))
    far = outside / "b.csv"
    far.write_bytes(csv_bytes(good_lines(2)))
    # a link inside the root does not widen it (where links work)
    linked = _working_link(inside / "b.csv", far)
    toml = f'source_roots = ["{inside.as_posix()}"]\n'
    assert sync(make_settings(toml + csv_source("a", ok))).counts["created"] == 2
    for path in (far, inside / "b.csv") if linked else (far,):
        s = make_settings(toml + csv_source("a", path), FMW_SOURCE_ALLOW_SYMLINKS="true")
        with pytest.raises(SyncFailed, match=re.escape(f"resolves to {far}, outside the folders "
                                                       "in source_roots")):
            sync(s)


def test_source_roots_are_relative_to_the_config_file_and_read_from_the_environment(tmp_path):
    import os

    from fmw.settings import load_settings
    cfg = tmp_path / "fmw.toml"
    absolute = (tmp_path / "srv" / "x").resolve()  # C:\... on Windows, /... elsewhere
    cfg.write_text(f'source_roots = ["feeds", "{absolute.as_posix()}"]\n', encoding="utf-8")
    assert load_settings(cfg, environ={}).source_roots == (tmp_path / "feeds", absolute)
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    env = {"FMW_SOURCE_ROOTS": os.pathsep.join([str(a), str(b)])}
    assert load_settings(cfg, environ=env).source_roots == (a, b)
    assert load_settings(None, environ={}).source_roots == ()


SHADOW = "root:$6$s4lt$SECRETHASHabcdef:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n"
PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "alice:x:1000:1000:Alice Smith,Room 1,555-1234,:/home/alice:/bin/bash\n")


@pytest.mark.parametrize(("text", "delimiter"), [(SHADOW, ","), (SHADOW, ":"), (PASSWD, ","),
                                                 (PASSWD, ":")],
                         ids=["shadow-comma", "shadow-colon", "passwd-comma", "passwd-colon"])
def test_a_path_to_an_unrelated_file_never_echoes_its_lines(make_settings, tmp_path, text,
                                                            delimiter):
    """Regression: pointing a source at a system file copied its lines into the error."""
    path = tmp_path / "shadow"
    path.write_text(text, encoding="utf-8")
    s = make_settings(csv_source("a", path, extra=f'delimiter = "{delimiter}"'))
    with pytest.raises(SyncFailed) as info:
        sync(s)
    with connect(s) as conn:
        row = conn.execute("SELECT error_summary FROM runs WHERE id = %s",
                           (info.value.run_id,)).fetchone()
        errs = run_errors(conn, info.value.run_id)
    assert row is not None
    shown = " ".join([str(info.value), row[0], *(e["reason"] for e in errs)])
    assert "source 'a'" in shown and str(path) in shown
    for secret in ("SECRETHASH", "s4lt", "root:", "alice", "Room", "/bin/bash"):
        assert secret not in shown


@pytest.mark.parametrize(("doc", "depth"), [
    ([], 1),
    ({"a": "[[[{{{", "b": ['\\"[', "]\\", ["x"]]}, 3),
    ([{"k": "\\\\\\\"[[["}, [[["\"]]]"]]]], 4),
    ([{"": ""}, "", {"a": ["", "[", ""]}], 3),
])
def test_json_depth_ignores_brackets_in_strings_and_escapes(doc, depth):
    from ledger.sources.jsondepth import max_depth
    assert max_depth(json.dumps(doc).encode()) == depth
    assert max_depth(json.dumps(doc, indent=1).encode()) == depth


def test_long_headers_alike_in_their_first_63_bytes_no_longer_fail_the_run(make_settings,
                                                                           tmp_path):
    """Regression: PostgreSQL cuts identifiers at 63 bytes, so two long header cells with the
    same start failed the run with "database error: column ... specified more than once"."""
    path = tmp_path / "a.csv"
    first, second = "x" * 70 + "a", "x" * 70 + "b"
    path.write_text(",".join([*HEADER, first, second]) + "\nvolte,F1,450,01,on,,,,1,2\n",
                    encoding="utf-8")
    s = make_settings(csv_source("a", path))
    assert sync(s).counts["created"] == 1
    with connect(s) as conn:
        (stored,) = features(conn).values()
    assert stored["attrs"] == {first: "1", "x" * 61 + "_2": "2"}
