"""Property-based: for any request the API answers 2xx/3xx/4xx, errors as problem JSON, never
5xx (issue 11, section 1). Hypothesis builds requests from the filter grammar, paging,
cursors (real ones, mutated) and every route's parameters, as raw query strings so any byte a
client can send is tried. Bounded and derandomised: the same inputs on every CI run.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import ROUTES
from query.fields import ALIASES
from query.filters import OPERATORS
from tests.api.conftest import client

FIELDS = ("feature_group", "feature_name", "mcc", "mnc", "status", "value", "owner", "country",
          "region", "operator", "last_changed_at", "source_updated_at", "attrs", "source",
          "identity_hash", "nonexistent", "", "__", *ALIASES["features"])
API_PARAMS = ("format", "download", "version", "as_of", "bom", "neutralise", "columns",
              "order", "limit", "offset", "cursor", "q")
DEV_PARAMS = ("limit", "errors_limit", "days", "yesterday", "since", "until", "identity",
              "group", "run", "op", "cursor", "id", "from", "to", "format")
FORMATS = ("csv", "json", "ndjson", "parquet", "xlsx", "CSV", "html", "")

HOSTILE = st.sampled_from([
    "", "%00", "a%00b", "%ED%A0%80", "%FF", "%C0%AF", "%0D%0A", "%E2%80%AE", "..%2F..",
    "99999999999999999999999999", "-99999999999999999999", "1e999", "NaN", "-0", "0x10",
    "9999-12-31", "0001-01-01", "9999-12-31T23:59:59%2B14:00", "2026-02-30", "%5B%5B%5B",
    "true", "false", "null", "%5C%2C", "%5C", "a%2Cb%2Cc", "-updated_at", "-", "%2C%2C",
    "%EA%B0%80%ED%95%9C", "450", "05", "volte", "enabled", "current", "v000001",
])
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(
    lambda s: quote(s, safe=""))
NUMBER = st.one_of(st.integers(min_value=-(10**30), max_value=10**30).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(str))
VALUE = st.one_of(HOSTILE, TEXT, NUMBER, st.lists(HOSTILE, max_size=5).map("%2C".join))


@st.composite
def filter_key(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.one_of(st.just(""), st.sampled_from(OPERATORS), st.just("nope")))
    return f"{field}__{op}" if op else field


FILTERS = st.lists(st.tuples(filter_key(), VALUE), max_size=3)
# the API's own parameters with hostile values, at most once each (a repeat is a plain 400)
OWN = st.lists(st.tuples(st.sampled_from(API_PARAMS), st.one_of(HOSTILE, VALUE)), max_size=3,
               unique_by=lambda p: p[0])
FORMAT = st.sampled_from(["format=json&", "format=csv&", "format=xlsx&", ""])
QUERY = st.tuples(FORMAT, FILTERS, OWN).map(
    lambda t: t[0] + "&".join(f"{quote(k)}={v}" for k, v in t[1] + [p for p in t[2]
                                                                     if p[0] != "format"]))

V1_PATHS = st.sampled_from(["/api/v1/features", "/api/v1/all", "/api/v1/features/volte",
                            "/api/v1/volte", "/api/v1/esim", "/api/v1/features/nope",
                            "/api/v1/features/..", "/api/v1/%00", "/api/v1/features/a%2Fb",
                            "/api/v1/" + "x" * 300])


def _ok(r, method: str = "GET") -> None:
    assert r.status_code < 500, (r.status_code, r.request.url[:300], r.text[:500])
    if r.status_code >= 400 and method != "HEAD" and r.status_code not in (414, 431):
        assert r.headers.get("Content-Type") == "application/problem+json", (
            r.status_code, r.request.url[:300], r.text[:300])
        body = r.json()
        assert body["status"] == r.status_code and "Traceback" not in r.text


SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def test_any_v1_query_is_answered_without_a_5xx(server, http):
    @given(path=V1_PATHS, query=QUERY, method=st.sampled_from(["GET", "HEAD"]))
    @SETTINGS
    def run(path: str, query: str, method: str) -> None:
        r = http.request(method, f"{server.url}{path}?{query}", timeout=30)
        _ok(r, method)

    run()


@st.composite
def mutated_cursor(draw: st.DrawFn, real: dict) -> str:
    """A real cursor's JSON with one part replaced by hostile content."""
    d = json.loads(json.dumps(real))
    where = draw(st.sampled_from(["f", "v", "q", "k", "k0", "extra", "raw"]))
    junk = draw(st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
                  st.floats(), st.text(max_size=30),
                  st.sampled_from([{"dec": "1e999999"}, {"dec": "NaN"}, {"ts": "x"},
                                   {"d": "0000-00-00"}, {"dec": "9" * 300}, {"ts": 5}])),
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.text(max_size=4), inner, max_size=3)),
        max_leaves=12))
    if where == "raw":
        text = draw(st.sampled_from(["[" * 5000, "{", "", "null", "1", '"x"', "\x00"]))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    if where == "k0" and d["k"]:
        d["k"][0] = junk
    elif where == "extra":
        d["x"] = junk
    else:
        d[where] = junk
    raw = json.dumps(d, allow_nan=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_any_forged_cursor_is_a_4xx(server, http):
    real_cursors = []
    for order in ("", "-mcc", "last_changed_at", "-source_updated_at,feature_name"):
        r = http.get(f"{server.url}/api/v1/features/volte",
                     params={"format": "json", "limit": 3, "order": order})
        assert r.status_code == 200, r.text[:300]
        token = r.json()["meta"]["cursor"]
        real_cursors.append((order, json.loads(base64.urlsafe_b64decode(
            token + "=" * (-len(token) % 4)))))

    @given(data=st.data(), which=st.integers(min_value=0, max_value=len(real_cursors) - 1))
    @SETTINGS
    def run(data: st.DataObject, which: int) -> None:
        order, real = real_cursors[which]
        token = data.draw(mutated_cursor(real))
        r = http.get(f"{server.url}/api/v1/features/volte",
                     params={"format": "json", "limit": 3, "order": order, "cursor": token},
                     timeout=30)
        _ok(r)

    run()


DEV_ROUTES = [t for t, _ in ROUTES if t.startswith("/api/dev/")]


def test_any_dev_query_with_a_key_is_answered_without_a_5xx(server, env):
    admin = client(key=env.key)

    @given(route=st.sampled_from(DEV_ROUTES), query=st.lists(
        st.tuples(st.sampled_from(DEV_PARAMS), VALUE), max_size=4).map(
        lambda ps: "&".join(f"{k}={v}" for k, v in ps)),
        run_id=st.sampled_from(["1", "0", "-1", "99999999999999999999", "x"]))
    @SETTINGS
    def run(route: str, query: str, run_id: str) -> None:
        path = route.replace("{run_id:int}", run_id)
        r = admin.get(f"{server.url}{path}?{query}", timeout=30)
        _ok(r)

    run()


BODIES = st.one_of(
    st.binary(max_size=200),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                           st.text(max_size=20)),
                 lambda inner: st.one_of(st.lists(inner, max_size=4),
                                         st.dictionaries(st.text(max_size=8), inner,
                                                         max_size=4)),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b'{"entries": ' + b"[" * 3000 + b"]" * 3000 + b"}",
                     b'{"entries": [{"cidr": "127.0.0.1/33", "role": "admin"}]}',
                     b'{"entries": [{"cidr": "::1", "role": "root"}]}',
                     b'{"entries": [{"cidr": "127.0.0.1", "role": "user", "note": "\\u0000"}]}',
                     b'{"entries": NaN}', b"\xff\xfe", b'{"entries": [1e999]}']),
)


def test_any_allow_list_body_is_answered_and_changes_nothing_when_refused(server, env):
    admin = client(key=env.key)
    before = admin.get(f"{server.url}/api/dev/allow_list").json()["entries"]

    @given(body=BODIES)
    @settings(max_examples=120, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(body: bytes) -> None:
        r = admin.put(f"{server.url}/api/dev/allow_list", data=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
        _ok(r, "PUT")
        if r.status_code == 200:  # a valid list was stored: put the original back
            restored = admin.put(f"{server.url}/api/dev/allow_list",
                                 json={"entries": before}, timeout=30)
            assert restored.status_code == 200, restored.text[:300]
        now = admin.get(f"{server.url}/api/dev/allow_list").json()["entries"]
        assert now == before

    run()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_on_every_route_are_4xx(server, env, method):
    admin = client(key=env.key)
    for template, _ in ROUTES:
        path = template.replace("{run_id:int}", "1").replace("{feature_group}", "volte")
        if (method, path) in (("POST", "/api/dev/sync/run"), ("PUT", "/api/dev/allow_list"),
                              ("PUT", "/api/dev/slsi/allow_list")):
            continue
        _ok(admin.request(method, f"{server.url}{path}", data=b"{}", timeout=30), method)
