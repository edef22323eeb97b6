"""Every dev call is audited, an unauditable one does not happen, logs cannot be forged, and
the explorer's relayed calls are judged by the person's address (issue 11, section 2)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from api.security import RateLimiter
from fmw import relay
from fmw.logs import one_line
from ledger.audit import verify_chain
from ledger.db import connect
from tests.api.conftest import client
from ui.devapi import DevApi, DevApiError

USER, ADMIN = "127.0.0.2", "127.0.0.3"


def _audit_rows(env, after: int = 0) -> list[tuple]:
    with connect(env.settings, autocommit=True) as conn:
        return conn.execute("SELECT seq, client, method, path, query, status, detail "
                            "FROM audit_log WHERE seq > %s ORDER BY seq", (after,)).fetchall()


def _head(env) -> int:
    with connect(env.settings, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()
    return int(row[0])


def _stored_allow_list(env) -> list[tuple]:
    with connect(env.settings, autocommit=True) as conn:
        return conn.execute("SELECT cidr::text, role, note FROM allow_list ORDER BY 1").fetchall()


def _chain_ok(env) -> None:
    with connect(env.settings, autocommit=True) as conn:
        v = verify_chain(conn)
    assert v.ok, v.problems


def _raw(url: str, request: bytes, source: str = "127.0.0.1") -> bytes:
    host, port = url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10,
                                  source_address=(source, 0)) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


@pytest.fixture
def roles(server, admin):
    r = admin.put(f"{server.url}/api/dev/allow_list", json={"entries": [
        {"cidr": USER, "role": "user"}, {"cidr": ADMIN, "role": "admin"}]})
    assert r.status_code == 200, r.text
    yield
    assert admin.put(f"{server.url}/api/dev/allow_list", json={"entries": []}).status_code == 200


@pytest.mark.parametrize("query", [b"note=%00x", b"note=\x00x", b"x%00=1", b"a=%0d%0aforged"])
def test_nul_or_line_break_in_a_dev_query_is_refused_and_audited(server, env, query):
    """Regression: a NUL in the query string made an admin PUT apply with no audit row."""
    before, head = _stored_allow_list(env), _head(env)
    body = b'{"entries": [{"cidr": "10.9.0.0/16", "role": "user", "note": "nul test"}]}'
    reply = _raw(server.url, b"PUT /api/dev/allow_list?" + query + b" HTTP/1.1\r\nHost: t\r\n"
                 b"Authorization: Bearer " + env.key.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    status = int(reply.split(b" ", 2)[1])
    assert status == 400, reply[:300]
    assert _stored_allow_list(env) == before  # nothing applied
    rows = _audit_rows(env, head)
    assert [(r[2], r[3], r[5]) for r in rows] == [("PUT", "/api/dev/allow_list", 400)]
    assert "\x00" not in rows[0][4]
    _chain_ok(env)


@pytest.fixture
def audit_broken(env):
    """The audit table made unwritable (renamed), everything else working; put back after."""
    with connect(env.settings, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
    try:
        yield
    finally:
        with connect(env.settings, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_log_away RENAME TO audit_log")


def test_a_change_that_cannot_be_audited_is_not_applied(server, env, admin, audit_broken):
    before = _stored_allow_list(env)
    r = admin.put(f"{server.url}/api/dev/allow_list", json={"entries": [
        {"cidr": "10.8.0.0/16", "role": "admin", "note": "should not land"}]})
    assert r.status_code == 503, r.text
    assert r.json()["type"].endswith("audit-unavailable")
    assert _stored_allow_list(env) == before
    r = admin.post(f"{server.url}/api/dev/sync/run")
    assert r.status_code == 503 and server.services.launcher.busy is False


def test_a_read_that_cannot_be_audited_is_withheld(server, env, admin, audit_broken):
    r = admin.get(f"{server.url}/api/dev/runs?limit=5")
    assert r.status_code == 503, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "data" not in r.json()


def test_after_an_audit_outage_the_chain_is_intact(server, env, admin):
    with connect(env.settings, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
    try:
        assert admin.get(f"{server.url}/api/dev/runs").status_code == 503
    finally:
        with connect(env.settings, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_log_away RENAME TO audit_log")
    assert admin.get(f"{server.url}/api/dev/runs").status_code == 200
    _chain_ok(env)


def test_a_change_is_recorded_before_and_after_it_runs(server, env, admin):
    head = _head(env)
    r = admin.put(f"{server.url}/api/dev/allow_list", json={"entries": []})
    assert r.status_code == 200
    rows = _audit_rows(env, head)
    assert [(r[2], r[5], r[6]) for r in rows] == [
        ("PUT", 0, "begin"), ("PUT", 200, "allow list replaced: 0 entries")]
    _chain_ok(env)


def test_log_lines_cannot_be_forged_through_a_path():
    forged = "/api/v1/x\r\n2026-12-07 12:00:00,000 ERROR api: forged\x00\u2028tail"
    line = one_line(f"refused 127.0.0.4 GET {forged}: address not on the allow list")
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert "\u2028" not in line and "\\n2026-12-07" in line


def test_the_served_api_logs_a_refused_hostile_path_on_one_line(env, tmp_path):
    """The real `fmw serve`: a refused address sends CR/LF/NUL in the path; the console log
    gets one line for it and no line that starts like an event of its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    environ = {**os.environ, "FMW_DATABASE_URL": env.settings.database_url or "",
               "FMW_SCHEMA": env.settings.schema,
               "FMW_SNAPSHOTS_DIR": str(env.settings.snapshots_path)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fmw", "--config", str(env.settings.config_path),
             "--data-dir", str(env.settings.data_dir), "serve", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=environ)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{url}/api/v1/esim", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            fake = "%0D%0A2026-12-07%2012:00:00,000%20ERROR%20api:%20FORGED%00"
            reply = _raw(url, f"GET /api/v1/x{fake} HTTP/1.1\r\nHost: t\r\n"
                         "Connection: close\r\n\r\n".encode(), source="127.0.0.4")
            assert b" 403 " in reply.split(b"\r\n", 1)[0]
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(30)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert not any(ln.startswith("2026-12-07 12:00:00,000") for ln in lines), lines
    hits = [ln for ln in lines if "FORGED" in ln]
    assert len(hits) == 1 and "refused 127.0.0.4" in hits[0] and "\\n2026" in hits[0], hits
    assert "\\0" in hits[0]


def _relaying(server, env, person: str, key: bytes | None = None) -> DevApi:
    return DevApi(server.url, env.key, client=person,
                  relay_key=key if key is not None else relay.load_key(env.settings.data_dir))


def test_the_explorer_relays_the_persons_address_and_it_is_checked(server, env, roles):
    # the explorer runs on 127.0.0.1, an admin address; the person at USER is not an admin
    with pytest.raises(DevApiError) as refused:
        _relaying(server, env, USER).runs(1)
    assert refused.value.status == 403 and USER in refused.value.detail
    head = _head(env)
    assert _relaying(server, env, ADMIN).runs(1) is not None
    rows = _audit_rows(env, head)
    assert [(r[1], r[5]) for r in rows] == [(ADMIN, 200)]
    assert rows[0][6].startswith("via explorer 127.0.0.1")


@pytest.mark.parametrize("headers", [
    {relay.ON_BEHALF_OF: ADMIN},  # no signature
    {relay.ON_BEHALF_OF: ADMIN, relay.SIGNATURE: "1.abc"},
    {relay.ON_BEHALF_OF: "not-an-ip", relay.SIGNATURE: f"{int(time.time())}.{'0' * 64}"},
])
def test_forged_relay_headers_are_refused(server, env, headers):
    r = client(key=env.key).get(f"{server.url}/api/dev/runs", headers=headers)
    assert r.status_code == 403 and r.json()["type"].endswith("relay-refused"), r.text


def test_a_relay_signed_with_another_key_or_for_another_call_is_refused(server, env, roles):
    with pytest.raises(DevApiError) as wrong_key:
        _relaying(server, env, ADMIN, key=b"\x01" * 32).runs(1)
    assert wrong_key.value.status == 403
    target = "/api/dev/runs?limit=1"
    headers = relay.sign(relay.load_key(env.settings.data_dir), ADMIN, "GET", target)
    r = client(key=env.key).get(f"{server.url}/api/dev/runs?limit=1000", headers=headers)
    assert r.status_code == 403  # signed for limit=1: replayed on another call
    old = relay.sign(relay.load_key(env.settings.data_dir), ADMIN, "GET", target,
                     now=time.time() - 600)
    r = client(key=env.key).get(f"{server.url}{target}", headers=old)
    assert r.status_code == 403 and "old" in r.json()["detail"]


def test_relay_is_only_trusted_from_this_machine():
    key = b"k" * 32
    h = relay.sign(key, ADMIN, "GET", "/api/dev/runs")
    with pytest.raises(relay.RelayRefused, match="this machine"):
        relay.verify(key, "10.1.2.3", ADMIN, h[relay.SIGNATURE], "GET", "/api/dev/runs")
    assert relay.verify(key, "::1", ADMIN, h[relay.SIGNATURE], "GET",
                        "/api/dev/runs").client == ADMIN


def test_the_rate_limit_counts_each_relayed_person(env, make_server, roles, server):
    srv = make_server(env.settings, dev_rate=RateLimiter(3))
    srv.services.allow_list.replace(server.services.allow_list.state.entries)
    a = _relaying(srv, env, ADMIN)
    for _ in range(3):
        a.runs(1)
    with pytest.raises(DevApiError) as limited:
        a.runs(1)
    assert limited.value.status == 429
    # the explorer's own address (and so every other person behind it) is not used up
    assert _relaying(srv, env, "127.0.0.1").runs(1) is not None


def test_the_relay_key_is_made_once_and_kept_private(tmp_path: Path):
    k1 = relay.load_key(tmp_path)
    assert relay.load_key(tmp_path) == k1 and len(k1) == relay.KEY_BYTES
    if os.name == "posix":
        assert relay.key_path(tmp_path).stat().st_mode & 0o077 == 0
