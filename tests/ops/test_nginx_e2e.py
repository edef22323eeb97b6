"""Debian's nginx, run on loopback with the rendered config, in front of the API (a real
waitress subprocess) and a websocket stand-in for the explorer.

Clients bind other loopback source addresses: 127.0.0.2 is a user, 127.0.0.3 and 127.0.0.5
are admins, 127.0.0.4 is on no list. The explorer is a fast stand-in (tests/ops/wsstub.py) here;
test_nginx_real_ui.py does the same with the real Streamlit server.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ledger.access import parse_entries, replace_allow_list
from ledger.db import connect
from ops.config import with_values
from ops.nginx_run import regenerate
from tests.ops.conftest import ApiProcess, OpsEnv, free_port, start_api
from tests.ops.nginxproc import NGINX, Nginx, start_nginx
from tests.ops.wsstub import WsStub, ws_roundtrip

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")

USER, ADMIN, STRANGER, RATE_ADMIN = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
ENTRIES = [{"cidr": f"{USER}/32", "role": "user", "note": "a user desk"},
           {"cidr": ADMIN, "role": "admin", "note": "ops"},
           {"cidr": RATE_ADMIN, "role": "admin", "note": "rate test"}]


@dataclass
class Front:
    env: OpsEnv
    api: ApiProcess
    ui: WsStub
    nginx: Nginx
    port: int
    settings: object

    def get(self, source: str, path: str, headers: dict[str, str] | None = None,
            ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15,
                                          source_address=(source, 0))
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()


def _set_allow_list(env: OpsEnv, raw: list[dict[str, str]]) -> None:
    with connect(env.settings, autocommit=True) as conn:
        replace_allow_list(conn, parse_entries(raw))


@pytest.fixture(scope="module")
def front(ops_env: OpsEnv) -> Iterator[Front]:
    _set_allow_list(ops_env, ENTRIES)
    work = ops_env.root / "nginx"
    api = start_api(ops_env, ops_env.root / "api-nginx.log")
    ui = WsStub()
    port = free_port()
    settings = with_values(
        ops_env.settings, api_port=int(api.url.rsplit(":", 1)[1]), ui_port=ui.port,
        nginx_listen="127.0.0.1", nginx_port=port, nginx_conf=str(work / "fmw.conf"),
        nginx_exe=NGINX, nginx_prefix=str(work), nginx_main_conf=str(work / "nginx.conf"),
        nginx_dev_rate_per_minute=60)
    up = regenerate(settings, require_check=True)
    assert up.changed and up.checked and up.entries == 3
    nginx = start_nginx(up.path, work, port)
    yield Front(ops_env, api, ui, nginx, port, settings)
    nginx.stop()
    ui.stop()
    api.stop()
    _set_allow_list(ops_env, [])


def test_allowed_addresses_get_200_and_others_403(front):
    for source in (USER, ADMIN):
        status, headers, _ = front.get(source, "/api/v1/features?format=json&limit=5")
        assert status == 200, (source, front.api.log.read_text())
        assert headers["x-snapshot-version"] == "1"
        status, _, body = front.get(source, "/streamlit/")
        assert status == 200 and body == b"FMW explorer stand-in"
    for path in ("/api/v1/features", "/streamlit/", "/api/dev/health"):
        status, headers, _ = front.get(STRANGER, path)
        assert status == 403, path
        assert headers["content-type"].startswith("text/html")  # refused by nginx itself


def test_users_get_403_on_the_dev_api_and_admins_need_a_key(front):
    key = {"Authorization": f"Bearer {front.env.key}"}
    status, headers, _ = front.get(USER, "/api/dev/health", key)
    assert status == 403 and headers["content-type"].startswith("text/html")
    status, _, body = front.get(ADMIN, "/api/dev/health", key)
    assert status == 200, body
    status, headers, _ = front.get(ADMIN, "/api/dev/runs")
    assert status == 401 and headers["content-type"] == "application/problem+json"


def test_everything_else_is_denied(front):
    for path in ("/", "/api/v2/x", "/streamlitx", "/api/docsx", "/api/openapi.json/x"):
        assert front.get(ADMIN, path)[0] == 403, path


def test_the_api_reference_is_served_to_users_and_admins(front):
    """Issue 13: /api/docs and /api/openapi.json were denied to everyone behind Nginx."""
    for who in (USER, ADMIN):
        status, headers, body = front.get(who, "/api/openapi.json")
        assert status == 200 and headers["content-type"].startswith("application/json"), body
        status, headers, _ = front.get(who, "/api/docs")
        assert status == 200 and headers["content-type"].startswith("text/html")
    assert front.get(STRANGER, "/api/docs")[0] == 403


def test_a_dot_segment_cannot_lead_a_user_into_the_dev_api(front):
    assert front.get(USER, "/api/v1/../dev/health")[0] == 403
    assert front.get(USER, "/api/v1/%2e%2e/dev/health")[0] == 403


def test_forwarded_for_is_overwritten_with_the_client_address(front):
    front.ui.seen.requests.clear()
    status, _, _ = front.get(USER, "/streamlit/", {"X-Forwarded-For": ADMIN,
                                                  "Forwarded": f"for={ADMIN}"})
    assert status == 200
    _, seen = front.ui.seen.requests[-1]
    assert seen["x-forwarded-for"] == USER and "forwarded" not in seen
    # The API sees the user's address, not the claimed one: the dev API stays closed.
    status, _, _ = front.get(USER, "/api/dev/health", {"X-Forwarded-For": ADMIN,
                                                      "Authorization": f"Bearer {front.env.key}"})
    assert status == 403


def test_security_headers_on_answers_and_refusals(front):
    for source, path in ((USER, "/api/v1/features?format=json&limit=1"), (STRANGER, "/")):
        _, headers, _ = front.get(source, path)
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "SAMEORIGIN"
        assert "frame-ancestors 'self'" in headers["content-security-policy"]
        assert headers["server"] == "nginx"  # no version


def test_websocket_upgrade_works_through_the_proxy(front):
    status, headers, reply = ws_roundtrip("127.0.0.1", front.port, "/streamlit/_stcore/stream",
                                          USER, "hello fmw")
    assert "101 Switching Protocols" in status
    assert headers["upgrade"].lower() == "websocket"
    assert reply == "echo: hello fmw"
    _, upstream = front.ui.seen.requests[-1]
    assert upstream["connection"].lower() == "upgrade" and upstream["x-forwarded-for"] == USER
    status, _, reply = ws_roundtrip("127.0.0.1", front.port, "/streamlit/_stcore/stream",
                                    STRANGER, "hello")
    assert " 403 " in status + " " and reply is None


def test_the_dev_api_is_rate_limited_per_address(front):
    statuses = [front.get(RATE_ADMIN, "/api/dev/runs")[0] for _ in range(40)]
    assert statuses[:21] == [401] * 21  # the burst passes to the API (which wants a key)
    assert 429 in statuses[21:]
    assert front.get(ADMIN, "/api/dev/runs")[0] == 401  # other addresses are not affected


def test_an_allow_list_change_is_rendered_checked_and_reloaded(front):
    _set_allow_list(front.env, [*ENTRIES, {"cidr": STRANGER, "role": "user", "note": "new"}])
    try:
        up = regenerate(front.settings, reload_nginx=True)
        assert up.changed and up.reloaded and "allow 127.0.0.4;" in up.path.read_text()
        deadline = time.monotonic() + 10  # workers restart; the API refreshes its own copy
        while (status := front.get(STRANGER, "/api/v1/features?format=json")[0]) != 200:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert front.get(STRANGER, "/api/dev/health")[0] == 403  # a user, not an admin
        again = regenerate(front.settings, reload_nginx=True)
        assert not again.changed and not again.reloaded
    finally:
        _set_allow_list(front.env, ENTRIES)
        regenerate(front.settings, reload_nginx=True)
