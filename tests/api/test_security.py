"""Allow list, forwarded addresses, API keys, rate limits and size limits, over real sockets.

Requests come from other loopback addresses (127.0.0.2, 127.0.0.3) by binding the client's
source address, so the server sees them as distinct clients.
"""

from __future__ import annotations

import time

import pytest

from api.security import AllowList, RateLimiter
from ledger.access import create_key, revoke_key
from ledger.db import connect
from tests.api.conftest import client, with_api

USER, ADMIN, STRANGER = "127.0.0.2", "127.0.0.3", "127.0.0.4"


@pytest.fixture
def roles(server, admin):
    """127.0.0.2 is a user address and 127.0.0.3 an admin address, for one test."""
    r = admin.put(f"{server.url}/api/dev/allow_list", json={"entries": [
        {"cidr": f"{USER}/32", "role": "user", "note": "a user desk"},
        {"cidr": ADMIN, "role": "admin", "note": "ops"}]})
    assert r.status_code == 200, r.text
    yield
    assert admin.put(f"{server.url}/api/dev/allow_list", json={"entries": []}).status_code == 200


def test_only_loopback_is_allowed_by_default(server, env):
    assert client().get(f"{server.url}/api/v1/esim").status_code == 200
    r = client(USER).get(f"{server.url}/api/v1/esim")
    assert r.status_code == 403
    assert r.json()["client"] == USER and "allow list" in r.json()["detail"]
    assert client(ADMIN, env.key).get(f"{server.url}/api/dev/health").status_code == 403


def test_user_addresses_reach_v1_and_admin_addresses_everything(server, env, roles):
    assert client(USER).get(f"{server.url}/api/v1/esim").status_code == 200
    r = client(USER, env.key).get(f"{server.url}/api/dev/runs")
    assert r.status_code == 403 and r.json()["title"] == "Forbidden"
    assert client(ADMIN).get(f"{server.url}/api/v1/esim").status_code == 200
    assert client(ADMIN, env.key).get(f"{server.url}/api/dev/runs").status_code == 200
    assert client(STRANGER).get(f"{server.url}/api/v1/esim").status_code == 403
    assert client(STRANGER).get(f"{server.url}/api/openapi.json").status_code == 403


def test_allow_list_alias_shows_the_same_list(server, admin, roles):
    a = admin.get(f"{server.url}/api/dev/allow_list").json()
    b = admin.get(f"{server.url}/api/dev/slsi/allow_list").json()
    assert a["entries"] == b["entries"] == [
        {"cidr": "127.0.0.2/32", "role": "user", "note": "a user desk"},
        {"cidr": "127.0.0.3/32", "role": "admin", "note": "ops"}]


@pytest.mark.parametrize(("entries", "field"), [
    ([{"cidr": "10.0.0.1/8", "role": "user"}], "cidr"),
    ([{"cidr": "10.0.0.0/33"}], "cidr"),
    ([{"cidr": "banana", "role": "user"}], "cidr"),
    ([{"cidr": "10.0.0.0/8", "role": "root"}], "role"),
    ([{"cidr": "10.0.0.0/8", "note": 5}], "note"),
    ([{"cidr": "10.0.0.0/8", "colour": "red"}], "colour"),
    ([{"cidr": "10.0.0.0/8"}, {"cidr": "10.0.0.0/8", "role": "admin"}], "cidr"),
    (["10.0.0.0/8"], "entry"),
])
def test_invalid_allow_list_is_refused_and_nothing_changes(server, admin, entries, field):
    before = admin.get(f"{server.url}/api/dev/allow_list").json()["entries"]
    r = admin.put(f"{server.url}/api/dev/allow_list", json={"entries": entries})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert admin.get(f"{server.url}/api/dev/allow_list").json()["entries"] == before


def test_malformed_body_is_a_400(server, admin):
    r = admin.put(f"{server.url}/api/dev/allow_list", data=b"{not json",
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert admin.put(f"{server.url}/api/dev/allow_list", json={"x": 1}).status_code == 400


def test_other_servers_pick_up_a_change_without_restart(server, admin, env, make_server):
    other = make_server(with_api(env.settings, api_allowlist_refresh_s=0.2))
    assert client(USER).get(f"{other.url}/api/v1/esim").status_code == 403
    admin.put(f"{server.url}/api/dev/allow_list", json={"entries": [{"cidr": USER}]})
    try:
        deadline = time.monotonic() + 10
        while client(USER).get(f"{other.url}/api/v1/esim").status_code != 200:
            assert time.monotonic() < deadline, "the other server never refreshed"
            time.sleep(0.1)
    finally:
        admin.put(f"{server.url}/api/dev/allow_list", json={"entries": []})


def test_forwarded_for_from_an_untrusted_peer_is_ignored(server):
    r = client(USER).get(f"{server.url}/api/v1/esim", headers={"X-Forwarded-For": "127.0.0.1"})
    assert r.status_code == 403 and r.json()["client"] == USER


def test_forwarded_for_is_used_only_from_the_trusted_proxy(env, make_server):
    srv = make_server(with_api(env.settings, api_trusted_proxy="127.0.0.1"))
    proxied = client().get(f"{srv.url}/api/v1/esim", headers={"X-Forwarded-For": "10.9.8.7"})
    assert proxied.status_code == 403 and proxied.json()["client"] == "10.9.8.7"
    assert client().get(f"{srv.url}/api/v1/esim").status_code == 200
    spoofed = client(USER).get(f"{srv.url}/api/v1/esim",
                               headers={"X-Forwarded-For": "127.0.0.1"})
    assert spoofed.status_code == 403 and spoofed.json()["client"] == USER


@pytest.mark.parametrize("auth", [None, "Bearer ", "Bearer fmw_nope_nope", "Basic dXNlcjpwdw==",
                                  "fmw_abc"])
def test_dev_needs_a_valid_key(server, auth):
    headers = {"Authorization": auth} if auth is not None else {}
    r = client().get(f"{server.url}/api/dev/runs", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.headers["Content-Type"] == "application/problem+json"


def test_keys_are_stored_hashed_and_revocation_is_immediate(server, env):
    with connect(env.settings, autocommit=True) as conn:
        made = create_key(conn, "short-lived")
        stored = conn.execute("SELECT key_hash FROM api_keys WHERE id = %s",
                              (made.key.id,)).fetchone()[0]
        assert made.secret not in stored and len(stored) == 64
        c = client(key=made.secret)
        assert c.get(f"{server.url}/api/dev/runs").status_code == 200
        used = conn.execute("SELECT last_used_at FROM api_keys WHERE id = %s",
                            (made.key.id,)).fetchone()[0]
        assert used is not None
        revoke_key(conn, made.key.prefix)
    assert c.get(f"{server.url}/api/dev/runs").status_code == 401


def test_dev_rate_limit_answers_429_with_retry_after(env, make_server):
    srv = make_server(env.settings, dev_rate=RateLimiter(per_minute=3))
    c = client(key=env.key)
    codes = [c.get(f"{srv.url}/api/dev/runs").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = c.get(f"{srv.url}/api/dev/runs")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["retry_after_s"] > 0
    # per address: another address has its own budget (and is refused for its address)
    assert client(USER, env.key).get(f"{srv.url}/api/dev/runs").status_code == 403
    # v1 is not rate limited
    assert all(c.get(f"{srv.url}/api/v1/esim").status_code == 200 for _ in range(10))


def test_rate_limiter_refills_over_time():
    now = [0.0]
    rl = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert rl.take("a") == 0 and rl.take("a") == 0
    assert rl.take("a") == pytest.approx(1.0)
    assert rl.take("b") == 0
    now[0] = 1.0
    assert rl.take("a") == 0


def test_request_size_limits(server, admin):
    big = b'{"entries": [' + b'{"cidr": "10.0.0.0/8"},' * 60_000 + b"]}"
    r = admin.put(f"{server.url}/api/dev/allow_list", data=big,
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["limit"] == 1_048_576
    r = client().get(f"{server.url}/api/v1/esim?q=" + "x" * 9000)
    assert r.status_code == 414 and r.headers["Content-Type"] == "application/problem+json"


def test_allow_list_keeps_the_last_good_copy_when_the_database_fails(env, tmp_path):
    calls = {"n": 0}

    def loader():
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("database down")
        from ipaddress import ip_network

        from ledger.access import AllowEntry
        return [AllowEntry(ip_network("10.1.0.0/16"), "user")]

    al = AllowList(loader, backup=tmp_path / "allow.json")
    assert al.load() and al.role("10.1.2.3") == "user"
    assert not al.load()
    assert al.role("10.1.2.3") == "user" and al.state.last_error == "database down"
    # a fresh process with the database down starts from the backup file
    fresh = AllowList(loader, backup=tmp_path / "allow.json")
    assert not fresh.load()
    assert fresh.role("10.1.2.3") == "user" and fresh.state.origin == "backup"
    assert fresh.role("10.2.0.1") is None and fresh.role("127.0.0.1") == "admin"
    assert AllowList(loader, allow_loopback=False).role("127.0.0.1") is None


def test_an_allow_list_change_re_renders_the_nginx_front(env, make_server, admin, tmp_path):
    import dataclasses

    from fmw.errors import FmwError
    from ops.nginx_run import regenerate
    conf = tmp_path / "fmw.conf"
    s = dataclasses.replace(env.settings, nginx_conf=str(conf))
    srv = make_server(s, allow_list_changed=lambda entries: regenerate(s, entries))
    r = admin.put(f"{srv.url}/api/dev/allow_list", json={"entries": [
        {"cidr": "10.20.0.0/16", "role": "user", "note": "lab"}]})
    assert r.status_code == 200 and r.json()["nginx"] == {"status": "ok"}
    assert "10.20.0.0/16" in conf.read_text(encoding="utf-8")

    def refuse(entries):
        raise FmwError("nginx -t refused the file")
    broken = make_server(s, allow_list_changed=refuse)
    r = admin.put(f"{broken.url}/api/dev/allow_list", json={"entries": []})
    assert r.status_code == 200  # stored and applied by the app; the front keeps its old file
    assert r.json()["nginx"] == {"status": "error", "detail": "nginx -t refused the file"}
    assert "10.20.0.0/16" in conf.read_text(encoding="utf-8")


def test_an_allow_list_change_reaches_another_server_within_about_a_second(server, admin, env,
                                                                           make_server):
    """Issue 13: a second API process refused a newly allowed address for up to 30 s (its
    refresh interval); PostgreSQL's NOTIFY now tells it at once."""
    other = make_server(env.settings)  # the default 30 s refresh
    assert client(USER).get(f"{other.url}/api/v1/esim").status_code == 403
    time.sleep(0.5)  # its listener is connected
    admin.put(f"{server.url}/api/dev/allow_list", json={"entries": [{"cidr": USER}]})
    try:
        started = time.monotonic()
        while client(USER).get(f"{other.url}/api/v1/esim").status_code != 200:
            assert time.monotonic() - started < 2.0, "the change did not arrive within 2 s"
            time.sleep(0.05)
        admin.put(f"{server.url}/api/dev/allow_list", json={"entries": []})
        started = time.monotonic()
        while client(USER).get(f"{other.url}/api/v1/esim").status_code != 403:
            assert time.monotonic() - started < 2.0, "the removal did not arrive within 2 s"
            time.sleep(0.05)
    finally:
        admin.put(f"{server.url}/api/dev/allow_list", json={"entries": []})
