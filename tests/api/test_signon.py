"""Sign-on against a real OpenID provider (tests/idp, oidc-provider on Node.js): the API takes
its access tokens, personal tokens and admin keys; every token fault is a 401 with its reason;
a scoped user learns nothing outside the scope through any v1 answer, count, cursor, ETag or
error; dev calls and scoped exports are audited with the user.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import hmac
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from fmw.authconfig import AuthConfig, RoleRule
from ledger.audit import verify_chain
from ledger.db import connect
from tests.api.conftest import GROUP_SIZES, TOTAL, Env, Server, client, extract_rows
from tests.api.conftest import serve as serve_api
from tests.api.conftest import stop as stop_api
from tests.oidc_provider import Provider

USERS: dict[str, dict[str, Any]] = {
    "ada": {"password": "ada-pw", "name": "Ada Admin", "groups": ["fmw-admins"]},
    "vic": {"password": "vic-pw", "name": "Vic Viewer", "groups": ["fmw-readers"]},
    "sam": {"password": "sam-pw", "name": "Sam 김", "groups": ["fmw-ims", "unrelated"]},
    "sue": {"password": "sue-pw", "name": "Sue Two", "groups": ["fmw-ims", "fmw-rcs"]},
    "nob": {"password": "nob-pw", "name": "Nobody", "groups": ["elsewhere"]},
}
REDIRECT = "http://127.0.0.1:9/callback"
CLIENTS = [{"client_id": "fmw-explorer", "client_secret": "explorer-secret",
            "redirect_uris": [REDIRECT]}]
ROLES = (
    RoleRule("fmw-admins", "admin"),
    RoleRule("fmw-readers", "viewer"),
    RoleRule("fmw-ims", "scoped", feature_groups=("volte",), mccs=("450",)),
    RoleRule("fmw-rcs", "scoped", feature_groups=("rcs",)),
)


def in_scope(rows: list[tuple[str, ...]], who: str) -> list[tuple[str, ...]]:
    if who == "sam":
        return [r for r in rows if r[0] == "volte" and r[2] == "450"]
    return [r for r in rows if (r[0] == "volte" and r[2] == "450") or r[0] == "rcs"]


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    provider = Provider.start(tmp_path_factory.mktemp("idp"), users=USERS, clients=CLIENTS)
    yield provider
    provider.stop()


def auth_config(idp: Provider, **extra: Any) -> AuthConfig:
    return AuthConfig(mode="oidc", issuer=idp.issuer, client_id="fmw-explorer",
                      client_secret="explorer-secret", audience=idp.resource, roles=ROLES,
                      **extra)


@pytest.fixture(scope="module")
def oidc(env: Env, idp: Provider) -> Iterator[Server]:
    settings = dataclasses.replace(env.settings, auth=auth_config(idp))
    srv = serve_api(settings)
    yield srv
    stop_api(srv)


@pytest.fixture(scope="module")
def tokens(idp: Provider) -> dict[str, str]:
    """Real access tokens, each from the authorization-code flow through the login form."""
    return {u: idp.login(u, USERS[u]["password"], "fmw-explorer", "explorer-secret",
                         REDIRECT)["access_token"] for u in ("ada", "vic", "sam", "sue", "nob")}


def as_user(token: str | None) -> requests.Session:
    s = client()
    if token:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def problem(r: requests.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    return body


# -- who may call --------------------------------------------------------------------------

def test_v1_without_a_token_is_401_saying_how_to_sign_in(oidc: Server) -> None:
    r = client().get(f"{oidc.url}/api/v1/features")
    body = problem(r, 401)
    assert "sign-on required" in body["detail"]
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="fmw"')


def test_docs_stay_open_without_a_token(oidc: Server) -> None:
    assert client().get(f"{oidc.url}/api/openapi.json").status_code == 200


def test_real_tokens_give_each_user_their_role(oidc: Server, tokens: dict[str, str]) -> None:
    who = {u: as_user(t).get(f"{oidc.url}/api/me").json() for u, t in tokens.items()
           if u != "nob"}
    assert {u: w["role"] for u, w in who.items()} == {
        "ada": "admin", "vic": "viewer", "sam": "scoped", "sue": "scoped"}
    assert who["sam"]["name"] == "Sam 김" and who["sam"]["subject"] == "sam"
    assert who["sam"]["scope"] == [{"feature_groups": ["volte"], "mccs": ["450"]}]
    assert len(who["sue"]["scope"]) == 2


def test_a_user_without_a_mapped_group_is_403(oidc: Server, tokens: dict[str, str]) -> None:
    body = problem(as_user(tokens["nob"]).get(f"{oidc.url}/api/v1/features"), 403)
    assert "none of your groups" in body["detail"]


def test_dev_api_takes_an_admin_sign_on_and_refuses_others(oidc: Server, env: Env,
                                                           tokens: dict[str, str]) -> None:
    assert as_user(tokens["ada"]).get(f"{oidc.url}/api/dev/runs").status_code == 200
    assert as_user(env.key).get(f"{oidc.url}/api/dev/runs").status_code == 200  # admin key
    for user in ("vic", "sam"):
        body = problem(as_user(tokens[user]).get(f"{oidc.url}/api/dev/runs"), 403)
        assert "for admins" in body["detail"]


# -- every token fault is a 401 with its reason ----------------------------------------------

def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _hs256(idp: Provider) -> str:
    """HS256 "signed" with the provider's public modulus as the secret (key confusion)."""
    good = idp.forge_access_token("vic")
    payload = good.split(".")[1]
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": idp.private_keys[0]["kid"]})
    secret = idp.private_keys[0]["n"].encode()
    sig = base64.urlsafe_b64encode(hmac.new(secret, f"{head}.{payload}".encode(),
                                            hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"{head}.{payload}.{sig}"


def faults(idp: Provider) -> dict[str, tuple[str, str]]:
    """name -> (token, words the reason must contain)."""
    now = int(time.time())
    kid = idp.private_keys[0]["kid"]
    good = idp.forge_access_token("vic")
    head, payload, sig = good.split(".")
    promoted = _b64({**_claims(good), "groups": ["fmw-admins"]})
    return {
        "expired": (idp.forge_access_token("vic", iat=now - 4000, exp=now - 3600), "expired"),
        "not yet valid": (idp.forge_access_token("vic", nbf=now + 3600), "not yet valid"),
        "wrong issuer": (idp.forge_access_token("vic", iss="http://127.0.0.1:1/evil"),
                         "another issuer"),
        "wrong audience": (idp.forge_access_token("vic", aud="someone-else"),
                           "another audience"),
        "bad signature": (idp.forge_access_token("vic", key=Provider.new_key(kid=kid)),
                          "signature"),
        "tampered claims": (f"{head}.{promoted}.{sig}", "signature"),
        "alg none": (f"{_b64({'alg': 'none', 'kid': kid})}.{payload}.", "algorithm 'none'"),
        "HS256 key confusion": (_hs256(idp), "algorithm 'HS256'"),
        "unknown kid": (idp.forge_access_token("vic", key=Provider.new_key(kid="nope")),
                        "key id 'nope'"),
        "no sub": (jwt.encode({k: v for k, v in _claims(good).items() if k != "sub"},
                              jwt.algorithms.RSAAlgorithm.from_jwk(idp.private_keys[0]),
                              algorithm="RS256", headers={"kid": kid}), "'sub'"),
        "garbage": ("not.a.token", "malformed"),
    }


def test_every_token_fault_is_a_401_with_its_reason(oidc: Server, idp: Provider) -> None:
    for name, (token, words) in faults(idp).items():
        r = as_user(token).get(f"{oidc.url}/api/v1/features?limit=1&format=json")
        assert r.status_code == 401, (name, r.status_code, r.text[:300])
        assert words in r.json()["detail"], (name, r.json()["detail"])
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], name


def test_a_forged_valid_looking_token_of_the_real_key_is_accepted(oidc: Server,
                                                                  idp: Provider) -> None:
    """The control for the faults above: the same forging with nothing wrong passes."""
    r = as_user(idp.forge_access_token("vic")).get(f"{oidc.url}/api/v1/features?limit=1")
    assert r.status_code == 200, r.text[:300]


def test_a_key_the_provider_rotated_away_stops_working(env: Env, idp: Provider,
                                                       tmp_path: Path) -> None:
    """Own provider and server: old key signs A; the provider rotates to a new key only; a
    token of the new key makes the API fetch the keys again, after which A is refused."""
    own = Provider.start(tmp_path / "idp", users=USERS, clients=CLIENTS)
    settings = dataclasses.replace(env.settings, auth=auth_config(own))
    srv = serve_api(settings)
    try:
        old = own.login("vic", "vic-pw", "fmw-explorer", "explorer-secret",
                        REDIRECT)["access_token"]
        assert as_user(old).get(f"{srv.url}/api/v1/features?limit=1").status_code == 200
        own.restart(keys=[Provider.new_key()])
        new = own.login("vic", "vic-pw", "fmw-explorer", "explorer-secret",
                        REDIRECT)["access_token"]
        assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
        assert as_user(new).get(f"{srv.url}/api/v1/features?limit=1").status_code == 200
        r = as_user(old).get(f"{srv.url}/api/v1/features?limit=1")
        assert r.status_code == 401 and "rotated away" in r.json()["detail"]
        own.stop()  # provider gone: the keys fetched stay in use
        assert as_user(new).get(f"{srv.url}/api/v1/features?limit=1").status_code == 200
    finally:
        stop_api(srv)
        own.stop()


def test_provider_unreachable_before_any_key_is_a_503_not_a_401(env: Env,
                                                                 idp: Provider) -> None:
    cfg = dataclasses.replace(auth_config(idp), issuer="http://127.0.0.1:9")
    srv = serve_api(dataclasses.replace(env.settings, auth=cfg))
    try:
        r = as_user(idp.forge_access_token("vic", iss="http://127.0.0.1:9")).get(
            f"{srv.url}/api/v1/features?limit=1")
        assert problem(r, 503)["type"].endswith("provider-unavailable")
        assert r.headers.get("Retry-After")
    finally:
        stop_api(srv)


# -- row scopes: nothing out of scope through any route ------------------------------------

def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("who", ["sam", "sue"])
def test_a_scoped_user_gets_exactly_the_rows_in_scope(oidc: Server, tokens: dict[str, str],
                                                      who: str) -> None:
    expected = in_scope(extract_rows(), who)
    s = as_user(tokens[who])
    page = s.get(f"{oidc.url}/api/v1/features?format=json&limit=10000").json()
    assert page["meta"]["total"] == len(expected) == len(page["data"])
    assert sorted((r["feature_group"], r["mcc"]) for r in page["data"]) == sorted(
        (r[0], r[2]) for r in expected)
    whole = s.get(f"{oidc.url}/api/v1/features")  # the full CSV stream
    rows = _csv_rows(whole.text)
    assert int(whole.headers["X-Total-Count"]) == len(rows) == len(expected)
    for fmt in ("ndjson", "parquet", "xlsx"):
        r = s.get(f"{oidc.url}/api/v1/features?format={fmt}")
        assert r.status_code == 200 and int(r.headers["X-Total-Count"]) == len(expected)
    # filters and search only narrow the scope, never widen it
    assert s.get(f"{oidc.url}/api/v1/features?mcc=310&format=json").json()["meta"]["total"] == (
        sum(1 for r in expected if r[2] == "310"))
    assert s.get(f"{oidc.url}/api/v1/features?feature_group=vonr&format=json"
                 ).json()["meta"]["total"] == 0
    assert s.get(f"{oidc.url}/api/v1/features?mcc__ne=450&feature_group__ne=volte"
                 f"&format=json").json()["meta"]["total"] == (
        0 if who == "sam" else sum(1 for r in expected if r[0] == "rcs" and r[2] != "450"))


def test_out_of_scope_groups_look_like_groups_that_do_not_exist(oidc: Server, env: Env,
                                                                tokens: dict[str, str]) -> None:
    s = as_user(tokens["sam"])
    for path in ("/api/v1/vonr", "/api/v1/features/esim", "/api/v1/no_such_group"):
        body = problem(s.get(f"{oidc.url}{path}"), 404)
        assert body["valid_groups"] == ["volte"], body
        assert "vonr" not in json.dumps(body) or path.endswith("vonr")
    r = s.get(f"{oidc.url}/api/v1/volte?format=json&limit=10000")
    assert r.json()["meta"]["total"] == len(in_scope(extract_rows(), "sam"))


def test_cursors_etags_and_caches_do_not_cross_scopes(oidc: Server, env: Env,
                                                      tokens: dict[str, str]) -> None:
    admin, sam = as_user(env.key), as_user(tokens["sam"])
    url = f"{oidc.url}/api/v1/features?format=json&limit=5"
    a = admin.get(url)
    b = sam.get(url)
    assert a.headers["ETag"] != b.headers["ETag"]
    assert a.json()["meta"]["total"] == TOTAL
    assert b.json()["meta"]["total"] == len(in_scope(extract_rows(), "sam"))
    # the admin's ETag does not buy the scoped user a 304 (or the admin's cached body)
    r = sam.get(url, headers={"If-None-Match": a.headers["ETag"]})
    assert r.status_code == 200 and r.json()["meta"]["total"] == b.json()["meta"]["total"]
    # another scope's cursor is refused, not followed
    cursor = a.json()["meta"]["cursor"]
    body = problem(sam.get(f"{url}&cursor={cursor}"), 400)
    assert "another query" in body["detail"]


def test_errors_of_a_scoped_user_name_nothing_out_of_scope(oidc: Server,
                                                           tokens: dict[str, str]) -> None:
    s = as_user(tokens["sam"])
    for path in ("/api/v1/features?nosuchfield=1", "/api/v1/features?mcc__gt=abc&format=json",
                 "/api/v1/vonr", "/api/v1/features?order=-nosuch", "/api/v1/features?q=zzz",
                 "/api/v1/features?feature_group=esim&format=json"):
        text = s.get(f"{oidc.url}{path}").text
        for hidden in ("vonr", "esim", "rcs", "310", "262"):
            if hidden not in path:  # a name the caller sent may be echoed back
                assert hidden not in text, (path, hidden, text[:300])


# -- personal tokens -----------------------------------------------------------------------

def test_personal_tokens_carry_the_scope_and_can_be_revoked(oidc: Server, env: Env,
                                                            tokens: dict[str, str]) -> None:
    sam = as_user(tokens["sam"])
    made = sam.post(f"{oidc.url}/api/me/tokens", json={"name": "nightly report", "days": 30})
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    assert secret.startswith("fmwp_") and made.json()["role"] == "scoped"
    listed = sam.get(f"{oidc.url}/api/me/tokens").json()["tokens"]
    assert [t["name"] for t in listed] == ["nightly report"]
    assert secret not in json.dumps(listed)
    program = as_user(secret)
    page = program.get(f"{oidc.url}/api/v1/features?format=json&limit=10000").json()
    assert page["meta"]["total"] == len(in_scope(extract_rows(), "sam"))
    assert problem(program.get(f"{oidc.url}/api/dev/runs"), 403)
    assert problem(program.post(f"{oidc.url}/api/me/tokens", json={"name": "x"}), 403)
    # nobody else can revoke it; its owner can, and it stops at once
    assert as_user(tokens["vic"]).delete(
        f"{oidc.url}/api/me/tokens/{made.json()['prefix']}").status_code == 404
    assert sam.delete(f"{oidc.url}/api/me/tokens/{made.json()['prefix']}").status_code == 200
    body = problem(program.get(f"{oidc.url}/api/v1/features?limit=1"), 401)
    assert "revoked" in body["detail"]


def test_an_expired_or_unknown_personal_token_is_refused(oidc: Server, env: Env,
                                                         tokens: dict[str, str]) -> None:
    made = as_user(tokens["vic"]).post(f"{oidc.url}/api/me/tokens",
                                       json={"name": "short", "days": 1}).json()
    with connect(env.settings, autocommit=True) as conn:
        conn.execute("UPDATE personal_tokens SET expires_at = now() - interval '1 second' "
                     "WHERE prefix = %s", (made["prefix"],))
    body = problem(as_user(made["token"]).get(f"{oidc.url}/api/v1/features?limit=1"), 401)
    assert "expired" in body["detail"]
    forged = made["token"][:-4] + "AAAA"
    body = problem(as_user(forged).get(f"{oidc.url}/api/v1/features?limit=1"), 401)
    assert "unknown personal token" in body["detail"]
    for bad in ({"name": "", "days": 1}, {"name": "x", "days": 10**6}, {"name": "x",
                                                                         "days": "7"}):
        problem(as_user(tokens["vic"]).post(f"{oidc.url}/api/me/tokens", json=bad), 400)


# -- the audit log names the user ------------------------------------------------------------

def test_dev_calls_and_scoped_exports_are_audited_with_the_user(oidc: Server, env: Env,
                                                                tokens: dict[str, str]) -> None:
    assert as_user(tokens["ada"]).get(f"{oidc.url}/api/dev/runs?limit=1").status_code == 200
    assert as_user(tokens["sam"]).get(f"{oidc.url}/api/v1/features?format=csv").status_code == 200
    with connect(env.settings, autocommit=True) as conn:
        rows = conn.execute("SELECT path, subject, user_name, detail FROM audit_log "
                            "ORDER BY seq DESC LIMIT 2").fetchall()
        check = verify_chain(conn)
    assert rows[0][:3] == ("/api/v1/features", "sam", "Sam 김")
    assert "export csv by a scoped user" in rows[0][3]
    assert rows[1][:3] == ("/api/dev/runs", "ada", "Ada Admin")
    assert check.ok, check.problems


def test_allowlist_mode_is_unchanged(server: Server, env: Env) -> None:
    """Phase 1's default: no token needed for v1, and /api/me says sign-on is off."""
    r = client().get(f"{server.url}/api/v1/features?format=json&limit=1")
    assert r.status_code == 200 and r.json()["meta"]["total"] == TOTAL
    assert problem(client().get(f"{server.url}/api/me"), 404)["type"].endswith("sign-on-off")



def test_a_token_revoked_elsewhere_stops_within_seconds(oidc: Server, env: Env,
                                                        tokens: dict[str, str]) -> None:
    """`fmw token revoke` on another machine: PostgreSQL announces it, the API forgets the
    token it remembered (not after its 30 s cache)."""
    from ledger.tokens import revoke
    made = as_user(tokens["vic"]).post(f"{oidc.url}/api/me/tokens",
                                       json={"name": "cron", "days": 7}).json()
    program = as_user(made["token"])
    assert program.get(f"{oidc.url}/api/v1/features?limit=1").status_code == 200
    with connect(env.settings, autocommit=True) as conn:
        revoke(conn, made["prefix"])
    deadline = time.monotonic() + 5
    status = 200
    while time.monotonic() < deadline and status == 200:
        time.sleep(0.2)
        status = program.get(f"{oidc.url}/api/v1/features?limit=1").status_code
    assert status == 401


def test_admins_edit_the_role_map_and_it_applies_at_once(oidc: Server, env: Env,
                                                         tokens: dict[str, str]) -> None:
    admin, nob = as_user(tokens["ada"]), as_user(tokens["nob"])
    url = f"{oidc.url}/api/v1/features?format=json"
    assert nob.get(url).status_code == 403
    entry = {"group": "elsewhere", "role": "scoped", "feature_groups": ["esim"]}
    r = admin.put(f"{oidc.url}/api/dev/roles", json={"entries": [entry]})
    assert r.status_code == 200, r.text
    assert r.json()["entries"] == [entry] and len(r.json()["config"]) == len(ROLES)
    try:
        page = nob.get(url).json()
        assert page["meta"]["total"] == GROUP_SIZES["esim"]
        assert {row["feature_group"] for row in page["data"]} == {"esim"}
        for bad, words in (([{"group": "x", "role": "root"}], "role must be one of"),
                           ([{"group": "x", "role": "scoped"}], "needs feature_groups"),
                           ([{"group": "x\n", "role": "viewer"}], "printable"),
                           ([{"group": "x", "role": "viewer", "mccs": ["450"]}],
                            "only a scoped role")):
            body = problem(admin.put(f"{oidc.url}/api/dev/roles", json={"entries": bad}), 400)
            assert words in body["detail"] and "entries[0]" in body["detail"], body
        assert problem(as_user(tokens["vic"]).put(f"{oidc.url}/api/dev/roles",
                                                  json={"entries": []}), 403)
        with connect(env.settings, autocommit=True) as conn:
            row = conn.execute("SELECT subject, detail FROM audit_log WHERE path = "
                               "'/api/dev/roles' AND status = 200 AND method = 'PUT' "
                               "ORDER BY seq DESC LIMIT 1").fetchone()
        assert row == ("ada", "role map replaced: 1 entries")
    finally:
        assert admin.put(f"{oidc.url}/api/dev/roles", json={"entries": []}).status_code == 200
    assert nob.get(url).status_code == 403


def test_fmw_smoke_passes_with_sign_on_on(oidc: Server, env: Env) -> None:
    """`fmw smoke` checks v1 with the admin key it already uses for the dev API."""
    from ops.smoke import run_checks
    checks = run_checks(oidc.url, env.key, max_age_s=10**9)
    assert all(c.ok for c in checks), [(c.name, c.detail) for c in checks if not c.ok]
