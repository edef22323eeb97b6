"""v1 filters, paging, versions and bad input (always a 4xx problem, never a 5xx)."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote

import pytest

from tests.api.conftest import GROUP_SIZES, PAIRS, TOTAL, extract_rows


def _expected(pred) -> int:
    return sum(1 for r in extract_rows() if pred(r))


def _json(http, url, **params):
    r = http.get(url, params={"format": "json", "limit": 10000, **params})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(("params", "pred"), [
    ({"mcc": "450"}, lambda r: r[2] == "450"),
    ({"mcc": "450,310"}, lambda r: r[2] in ("450", "310")),
    ({"mcc__in": "262,440"}, lambda r: r[2] in ("262", "440")),
    ({"status": "disabled", "mnc": "05"}, lambda r: r[4] == "disabled" and r[3] == "05"),
    ({"status__ne": "enabled"}, lambda r: r[4] != "enabled"),
    ({"feature_name__contains": "한국"}, lambda r: "한국" in r[1]),
    ({"feature_name__icontains": "FEATURE 01"}, lambda r: "feature 01" in r[1].lower()),
    ({"feature_name__startswith": "Feature 02"}, lambda r: r[1].startswith("Feature 02")),
    ({"value__gte": "1"}, lambda r: r[5] >= "1"),
    ({"notes__isnull": "true"}, lambda r: True),
    ({"notes__isnull": "false"}, lambda r: False),
    ({"q": "한국"}, lambda r: "한국" in r[1]),
])
def test_filters_select_exactly_the_matching_rows(server, http, params, pred):
    body = _json(http, f"{server.url}/api/v1/features", **params)
    assert body["meta"]["total"] == len(body["data"]) == _expected(pred)


def test_group_path_and_filters_combine(server, http):
    body = _json(http, f"{server.url}/api/v1/features/vonr", mcc="450", mnc="08")
    assert body["meta"]["total"] == _expected(
        lambda r: r[0] == "vonr" and (r[2], r[3]) == ("450", "08"))
    assert {d["feature_group"] for d in body["data"]} == {"vonr"}


def test_columns_and_order(server, http):
    body = _json(http, f"{server.url}/api/v1/rcs", columns="feature_name,mcc,status",
                 order="-mcc,feature_name")
    assert list(body["data"][0]) == ["feature_name", "mcc", "status"]
    keys = [(d["mcc"], d["feature_name"]) for d in body["data"]]
    assert keys == sorted(keys, key=lambda k: (-int(k[0]), k[1]))
    r = http.get(f"{server.url}/api/v1/rcs?columns=feature_name,mcc")
    assert r.text.splitlines()[0] == '"feature_name","mcc"'


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_cursor_paging_across_the_whole_table_returns_each_row_once(server, http, fmt):
    seen: list[str] = []
    url = f"{server.url}/api/v1/features?format={fmt}&limit=17&columns=identity_hash"
    pages = 0
    while url:
        r = http.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["X-Total-Count"] == str(TOTAL)
        if fmt == "json":
            seen += [d["identity_hash"] for d in r.json()["data"]]
        else:
            seen += [row["identity_hash"] for row in csv.DictReader(io.StringIO(r.text))]
        nxt = r.links.get("next", {}).get("url")
        url = f"{server.url}{nxt}" if nxt else None
        pages += 1
    assert pages == -(-TOTAL // 17)
    assert len(seen) == len(set(seen)) == TOTAL


def test_offset_paging_with_an_order_covers_the_table(server, http):
    seen = []
    for offset in range(0, TOTAL, 50):
        body = _json(http, f"{server.url}/api/v1/features", limit=50, offset=offset,
                     order="identity_hash", columns="identity_hash")
        seen += [d["identity_hash"] for d in body["data"]]
    assert seen == sorted(seen) and len(set(seen)) == TOTAL


def test_version_and_as_of_select_the_snapshot(server, http, env):
    body = _json(http, f"{server.url}/api/v1/esim", version=str(env.version))
    assert body["meta"]["version"] == env.version
    body = _json(http, f"{server.url}/api/v1/esim", as_of="2999-01-01")
    assert body["meta"]["version"] == env.version
    r = http.get(f"{server.url}/api/v1/esim", params={"version": "999"})
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    r = http.get(f"{server.url}/api/v1/esim", params={"as_of": "2000-01-01"})
    assert r.status_code == 404


def test_unknown_group_is_404_listing_the_valid_groups(server, http):
    for path in ("/api/v1/nope", "/api/v1/features/nope", "/api/v1/features/Wi-Fi%20Calling"):
        r = http.get(server.url + path)
        assert r.status_code == 404, path
        p = r.json()
        assert r.headers["Content-Type"] == "application/problem+json"
        assert p["status"] == 404 and sorted(p["valid_groups"]) == sorted(GROUP_SIZES)


@pytest.mark.parametrize(("query", "member", "value"), [
    ("bogus=1", "field", "bogus"),
    ("mcc__like=4", "operator", "like"),
    ("columns=mcc,nope", "field", "nope"),
    ("order=-nope", "field", "nope"),
    ("first_run_id=abc", "field", "first_run_id"),
    ("mcc__gt=4&limit=0", "field", "limit"),
    ("limit=abc", "field", "limit"),
    ("cursor=garbage", "title", "Bad Cursor"),
    ("format=pdf", "parameter", "format"),
    ("version=latest", "parameter", "version"),
    ("download=maybe", "parameter", "download"),
])
def test_bad_input_is_a_400_naming_it(server, http, query, member, value):
    r = http.get(f"{server.url}/api/v1/features?{query}")
    assert r.status_code == 400, r.text
    p = r.json()
    assert p[member] == value and p["detail"]
    if member == "field" and value not in ("limit", "first_run_id"):
        assert "feature_name" in p["valid_fields"]
    if member == "operator":
        assert "contains" in p["valid_operators"]


def test_a_cursor_of_another_query_is_refused(server, http):
    r = http.get(f"{server.url}/api/v1/features?format=json&limit=5")
    cursor = r.json()["meta"]["cursor"]
    other = http.get(f"{server.url}/api/v1/features?format=json&limit=5&mcc=450&cursor={cursor}")
    assert other.status_code == 400 and other.json()["title"] == "Bad Cursor"


@pytest.mark.parametrize("path", [
    "/api/v1/..%2F..%2Fetc%2Fpasswd", "/api/v1/features/..", "/api/v1/features/%2e%2e",
    "/api/v1/features/volte%2F..%2F..", "/api/v1/" + quote("../../CURRENT.json", safe=""),
    "/api/v1/features/" + "x" * 300,
])
def test_path_parameters_are_never_paths(server, http, path):
    r = http.get(server.url + path)
    assert r.status_code in (400, 404)
    assert r.headers["Content-Type"] == "application/problem+json"


def test_no_traceback_and_no_5xx_for_odd_input(server, http):
    for q in ("mcc=%00", "q=" + "x" * 5000, "mcc__in=" + ",".join(["1"] * 2000),
              "order=", "columns=", "as_of=yesterday", "limit=99999999999999999999",
              "cursor=" + "A" * 500, "format=json&format=csv", "mcc__isnull=perhaps"):
        r = http.get(f"{server.url}/api/v1/features?{q}")
        assert r.status_code < 500, (q, r.text)
        assert "Traceback" not in r.text


def test_pairs_are_the_hand_checked_ones(server, http):
    body = _json(http, f"{server.url}/api/v1/features", columns="mcc,mnc")
    assert {(d["mcc"], d["mnc"]) for d in body["data"]} == set(PAIRS)
