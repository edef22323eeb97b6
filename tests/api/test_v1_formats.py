"""v1 formats, downloads, compression and caching against a real waitress server."""

from __future__ import annotations

import csv
import gzip
import io
import json
import socket
import time
import zlib

import openpyxl
import pyarrow.parquet as pq
import pytest

from tests.api.conftest import GROUP_SIZES, TOTAL


def _rows(fmt: str, body: bytes) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    if fmt == "json":
        return json.loads(body)["data"]
    if fmt == "ndjson":
        return [json.loads(line) for line in body.decode().splitlines() if line]
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(body)).to_pylist()
    wb = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    values = list(wb.active.iter_rows(values_only=True))
    return [dict(zip(values[0], r, strict=True)) for r in values[1:]]


CTYPES = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson",
          "parquet": "application/vnd.apache.parquet",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet", "xlsx"])
def test_each_format_streams_every_row_of_a_group(server, http, env, fmt):
    r = http.get(f"{server.url}/api/v1/features/volte", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(CTYPES[fmt])
    assert r.headers["X-Total-Count"] == str(GROUP_SIZES["volte"])
    assert r.headers["X-Snapshot-Version"] == str(env.version)
    rows = _rows(fmt, r.content)
    assert len(rows) == GROUP_SIZES["volte"]
    assert {row["feature_group"] for row in rows} == {"volte"}
    assert len({row["identity_hash"] for row in rows}) == len(rows)


def test_json_is_a_page_with_data_and_meta(server, http, env):
    r = http.get(f"{server.url}/api/v1/features", params={"format": "json", "limit": 10})
    body = r.json()
    assert r.status_code == 200 and len(body["data"]) == 10
    assert body["meta"]["total"] == TOTAL and body["meta"]["version"] == env.version
    assert body["meta"]["next"].startswith("/api/v1/features?")
    assert r.headers["Link"] == f'<{body["meta"]["next"]}>; rel="next"'
    assert r.headers["X-Total-Count"] == str(TOTAL)
    assert body["data"][0]["attrs"] == {}  # JSON columns are embedded as values


def test_csv_is_the_default_and_accept_negotiates(server, http):
    assert http.get(f"{server.url}/api/v1/all").headers["Content-Type"].startswith("text/csv")
    r = http.get(f"{server.url}/api/v1/rcs", headers={"Accept": "application/x-ndjson"})
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    assert len(_rows("ndjson", r.content)) == GROUP_SIZES["rcs"]
    r = http.get(f"{server.url}/api/v1/rcs", headers={"Accept": "image/png"})
    assert r.status_code == 406 and "csv" in r.json()["valid"]


def test_csv_stream_of_everything_has_every_row_once_and_a_total(server, http):
    r = http.get(f"{server.url}/api/v1/features")
    rows = _rows("csv", r.content)
    assert len(rows) == TOTAL == int(r.headers["X-Total-Count"])
    assert "Link" not in r.headers  # nothing after a full stream
    assert len({row["identity_hash"] for row in rows}) == TOTAL


@pytest.mark.parametrize(("path", "name"), [
    ("/api/v1/features/volte", "features_volte_v{v:06d}.csv"),
    ("/api/v1/volte?format=parquet", "features_volte_v{v:06d}.parquet"),
    ("/api/v1/features?format=xlsx", "features_all_v{v:06d}.xlsx"),
])
def test_download_sets_an_attachment_name_with_group_and_version(server, http, env, path, name):
    sep = "&" if "?" in path else "?"
    r = http.get(f"{server.url}{path}{sep}download=1")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == (
        f'attachment; filename="{name.format(v=env.version)}"')


def test_gzip_when_accepted_for_pages_and_streams(server, http):
    plain = http.get(f"{server.url}/api/v1/features")
    r = http.get(f"{server.url}/api/v1/features", headers={"Accept-Encoding": "gzip"},
                 stream=True)
    assert r.headers["Content-Encoding"] == "gzip"
    raw = r.raw.read(decode_content=False)
    assert gzip.decompress(raw) == plain.content
    assert len(raw) < len(plain.content) / 3
    page = http.get(f"{server.url}/api/v1/features?format=json&limit=50",
                    headers={"Accept-Encoding": "gzip;q=1.0, identity;q=0.5"}, stream=True)
    assert page.headers["Content-Encoding"] == "gzip"
    assert json.loads(zlib.decompress(page.raw.read(decode_content=False), 31))["data"]
    none = http.get(f"{server.url}/api/v1/features", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in none.headers


def test_etag_and_if_none_match_give_304(server, http, env):
    url = f"{server.url}/api/v1/volte?format=json&mcc=450"
    r = http.get(url)
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert etag.startswith(f'W/"v{env.version}-')
    assert "no-cache" in r.headers["Cache-Control"]
    again = http.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert again.headers["X-Snapshot-Version"] == str(env.version)
    assert http.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    # a different query is a different representation
    other = http.get(url + "&mnc=05", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    # the same parameters in another order are the same query
    swapped = http.get(f"{server.url}/api/v1/volte?mcc=450&format=json",
                       headers={"If-None-Match": etag})
    assert swapped.status_code == 304


def test_pinned_version_is_cacheable_for_long(server, http, env):
    r = http.get(f"{server.url}/api/v1/esim?version=v{env.version:06d}")
    assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"]


def test_head_has_the_headers_and_no_body(server, http):
    r = http.head(f"{server.url}/api/v1/features/vonr")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["X-Total-Count"] == str(GROUP_SIZES["vonr"])
    r = http.head(f"{server.url}/api/v1/features/vonr?format=json&limit=5")
    assert r.status_code == 200 and r.content == b"" and r.headers["Link"]


def _head_of(server, path: str, extra: str = "") -> str:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
                  .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
    return head.split(b"\r\n\r\n")[0].decode().lower()


def test_filtered_streams_are_chunked_not_buffered(server):
    """A filtered export has no Content-Length: it is streamed as it is encoded."""
    headers = _head_of(server, "/api/v1/features?mcc__ne=999")
    assert "transfer-encoding: chunked" in headers and "content-length" not in headers
    headers = _head_of(server, "/api/v1/features", "Cache-Control: no-cache\r\n")
    assert "transfer-encoding: chunked" in headers


@pytest.mark.parametrize("path", ["/api/v1/features", "/api/v1/volte?format=parquet",
                                  "/api/v1/all?format=ndjson&bom=1"])
def test_whole_downloads_are_served_from_a_file_identical_to_the_stream(server, http, path):
    first = http.get(server.url + path)  # streams and keeps a copy (or is already warm)
    cached = http.get(server.url + path)
    fresh = http.get(server.url + path, headers={"Cache-Control": "no-cache"})
    assert first.status_code == cached.status_code == fresh.status_code == 200
    assert cached.headers["Content-Length"] == str(len(cached.content))
    assert cached.content == fresh.content == first.content
    assert cached.headers["X-Total-Count"] == fresh.headers["X-Total-Count"]


def test_json_pages_are_served_from_memory_and_equal_fresh_ones(server, http):
    url = f"{server.url}/api/v1/rcs?format=json&limit=7&mcc=450"
    a, b = http.get(url), http.get(url)
    c = http.get(url, headers={"Cache-Control": "no-cache"})
    assert a.content == b.content == c.content
    assert a.headers["Link"] == b.headers["Link"] == c.headers["Link"]
    stats = server.services.responses.stats()
    assert stats["hits"] >= 1 and stats["entries"] >= 1


def test_whole_downloads_have_a_gzip_copy_for_gzip_clients(server, http):
    plain = http.get(f"{server.url}/api/v1/features/vonr")
    http.get(f"{server.url}/api/v1/features/vonr")  # the cached file exists from here on
    deadline = time.monotonic() + 10
    while True:  # the gzip copy is written in the background
        r = http.get(f"{server.url}/api/v1/features/vonr",
                     headers={"Accept-Encoding": "gzip"}, stream=True)
        if r.headers.get("Content-Length"):
            break
        r.close()
        assert time.monotonic() < deadline, "no gzip copy"
        time.sleep(0.05)
    assert r.headers["Content-Encoding"] == "gzip"
    raw = r.raw.read(decode_content=False)
    assert len(raw) == int(r.headers["Content-Length"])
    assert gzip.decompress(raw) == plain.content
