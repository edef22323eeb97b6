"""Hostile input to the HTTP API gets a 4xx problem JSON, never a 500 (issue 11, section 1).

Each case below returned 500 in the adversarial review; the names say which.
"""

from __future__ import annotations

import base64
import json

import pytest

from query.errors import BadCursor
from query.paging import CursorState, decode_cursor, encode_cursor


def _problem(r, status: int | None = None) -> dict:
    assert r.status_code < 500, (r.status_code, r.url, r.text[:500])
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"] == "application/problem+json", r.text[:300]
    body = r.json()
    assert body["status"] == r.status_code and body["detail"]
    assert "Traceback" not in r.text
    return body


def _raw_cursor(payload: object) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _first_cursor(server, http) -> str:
    r = http.get(f"{server.url}/api/v1/features/volte", params={"format": "json", "limit": 5})
    assert r.status_code == 200
    return r.json()["meta"]["cursor"]


@pytest.mark.parametrize("offset", ["99999999999999999999999999", "-1", "1e3", "9" * 5000])
def test_huge_or_odd_offset_is_a_400_not_a_500(server, http, offset):
    r = http.get(f"{server.url}/api/v1/features", params={"format": "json", "offset": offset})
    body = _problem(r, 400)
    assert "offset" in body["detail"]


@pytest.mark.parametrize("limit", ["99999999999999999999999999", "0", "-5", "abc"])
def test_huge_or_odd_limit_is_a_400(server, http, limit):
    _problem(http.get(f"{server.url}/api/v1/features", params={"format": "json",
                                                               "limit": limit}), 400)


@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01", "9999-12-31T23:59:59+14:00",
                                   "0001-01-01T00:00:00-14:00", "2026-02-30", "2026-13-01",
                                   "99999-01-01", "2026-01-01T25:00"])
def test_extreme_as_of_is_answered_not_a_500(server, http, as_of):
    r = http.get(f"{server.url}/api/v1/features", params={"format": "json", "as_of": as_of})
    if r.status_code != 200:  # before every version, or not a date: a problem naming as_of
        body = _problem(r)
        assert r.status_code in (400, 404), body


def test_far_future_as_of_serves_the_newest_version_or_says_why(server, http, env):
    r = http.get(f"{server.url}/api/v1/features", params={"format": "json",
                                                          "as_of": "9999-12-31"})
    # a date after every version is a valid question: the newest version answers it
    assert r.status_code == 200, r.text[:300]
    assert r.json()["meta"]["version"] == env.version


@pytest.mark.parametrize("values", [
    pytest.param(["text-instead-of-number", 1, 2], id="wrong-types"),
    pytest.param([{"dec": "9" * 2_000}], id="huge-decimal"),
    pytest.param([{"dec": "1e999999999"}], id="huge-exponent"),
    pytest.param([{"dec": "NaN"}], id="nan-decimal"),
    pytest.param([{"ts": "not a time"}], id="bad-timestamp"),
    pytest.param([{"d": "9999-99-99"}], id="bad-date"),
    pytest.param([[[[[1]]]]], id="nested-list"),
    pytest.param([{"x": 1, "y": 2}], id="two-tags"),
    pytest.param([1e308, 1e308, 1e308], id="huge-floats"),
    pytest.param([10**40, 1, 1], id="huge-int"),
    pytest.param([True, None, "x"], id="bool"),
])
def test_forged_cursor_values_are_a_400(server, http, env, values):
    real = _first_cursor(server, http)
    raw = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    raw["k"] = values
    r = http.get(f"{server.url}/api/v1/features/volte",
                 params={"format": "json", "limit": 5, "cursor": _raw_cursor(raw)})
    body = _problem(r, 400)
    assert "cursor" in body["detail"]


def test_forged_cursor_with_deep_nesting_is_a_400(server, http, env):
    # built as text: json.dumps itself would recurse this deep
    text = '{"f":1,"v":' + str(env.version) + ',"q":"x","k":[' + "[" * 100_000 + "1" \
        + "]" * 100_000 + "]}"
    token = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    r = http.get(f"{server.url}/api/v1/features/volte",
                 params={"format": "json", "limit": 5, "cursor": token})
    # far longer than any cursor we issue: refused by the server's request limits (waitress
    # answers 431 itself, before the application) or by the cursor's size
    assert r.status_code in (400, 414, 431), (r.status_code, r.text[:300])
    if r.status_code != 431:
        _problem(r)


def test_cursor_longer_than_any_issued_is_refused_before_decoding(env):
    # through HTTP the query-string limit (8,192) comes first; a server configured with a
    # larger one still never decodes an oversized token
    text = '{"f":1,"v":' + str(env.version) + ',"q":"x","k":["' + "x" * 20_000 + '"]}'
    token = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    with pytest.raises(BadCursor, match="longer than any cursor"):
        decode_cursor(token)


def test_forged_cursor_with_moderate_nesting_is_a_400(server, http, env):
    text = '{"f":1,"v":' + str(env.version) + ',"q":"x","k":[' + "[" * 500 + "1" + "]" * 500 + "]}"
    token = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    r = http.get(f"{server.url}/api/v1/features/volte",
                 params={"format": "json", "limit": 5, "cursor": token})
    _problem(r, 400)


@pytest.mark.parametrize("version", [-1, 10**30, "x"])
def test_forged_cursor_version_is_a_4xx(server, http, version):
    real = _first_cursor(server, http)
    raw = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    raw["v"] = version
    r = http.get(f"{server.url}/api/v1/features/volte",
                 params={"format": "json", "limit": 5, "cursor": _raw_cursor(raw)})
    _problem(r)


def test_cursor_from_another_query_is_refused(server, http, env):
    token = encode_cursor(CursorState(env.version, "0" * 16, ("x", "y", "z")))
    r = http.get(f"{server.url}/api/v1/features/volte",
                 params={"format": "json", "limit": 5, "cursor": token})
    _problem(r, 400)


@pytest.mark.parametrize("version", ["99999999999999999999", "v999999999999", "-1", "1.5"])
def test_odd_versions_are_4xx(server, http, version):
    _problem(http.get(f"{server.url}/api/v1/features", params={"format": "json",
                                                               "version": version}))


def test_deeply_nested_allow_list_body_is_a_400(server, admin):
    body = '{"entries": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = admin.put(f"{server.url}/api/dev/allow_list", data=body,
                  headers={"Content-Type": "application/json"})
    _problem(r)
    assert r.status_code in (400, 413)


def test_moderately_nested_allow_list_body_is_a_400(server, admin):
    body = '{"entries": [' + "[" * 200 + "]" * 200 + "]}"
    r = admin.put(f"{server.url}/api/dev/allow_list", data=body,
                  headers={"Content-Type": "application/json"})
    _problem(r, 400)


@pytest.mark.parametrize("value", ["%00", "a%00b", "%ED%A0%80", "%FF%FE", "9" * 400,
                                   "%C3%A9" * 201, "%25%00", "%0D%0A"])
@pytest.mark.parametrize("name", ["mcc", "q", "status__in", "order", "columns", "format",
                                  "version", "as_of", "limit", "cursor", "download"])
def test_odd_bytes_in_any_parameter_are_answered(server, http, name, value):
    """Raw bytes as a client can send them (NUL, a lone surrogate's UTF-8, invalid UTF-8)."""
    r = http.get(f"{server.url}/api/v1/features?format=json&{name}={value}")
    assert r.status_code < 500, r.text[:300]
    if r.status_code >= 400:
        _problem(r)
