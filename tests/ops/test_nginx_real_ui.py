"""The real explorer (Streamlit under /streamlit/) and the API behind Debian's nginx on loopback.

The other nginx tests use a websocket stand-in for speed; this one proves the rendered config
works with the real Streamlit server: its page, its health check and its websocket upgrade.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ledger.access import parse_entries, replace_allow_list
from ledger.db import connect
from ops.config import with_values
from ops.nginx_run import regenerate
from tests.ops.conftest import OpsEnv, free_port, start_api
from tests.ops.nginxproc import NGINX, start_nginx
from tests.ops.wsstub import accept_key, read_head
from ui.config import ui_config
from ui.launch import start_ui

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")

USER, STRANGER = "127.0.0.2", "127.0.0.4"


@dataclass
class Front:
    port: int

    def get(self, source: str, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                          source_address=(source, 0))
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def front(ops_env: OpsEnv) -> Iterator[Front]:
    with connect(ops_env.settings, autocommit=True) as conn:
        replace_allow_list(conn, parse_entries([{"cidr": USER, "role": "user", "note": "desk"}]))
    work = ops_env.root / "nginx-real-ui"
    api = start_api(ops_env, ops_env.root / "api-real-ui.log")
    ui_settings = with_values(ops_env.settings, ui_port=free_port(), ui_base_url_path="/streamlit/",
                              ui_usage_flush_s=0.5)
    log = open(ops_env.root / "ui-real.log", "wb")  # noqa: SIM115 - closed below
    ui = start_ui(ui_settings, ui_config(ui_settings), output=log)
    port = free_port()
    try:
        ui.wait_ready()
        settings = with_values(
            ui_settings, api_port=int(api.url.rsplit(":", 1)[1]), nginx_listen="127.0.0.1",
            nginx_port=port, nginx_conf=str(work / "fmw.conf"), nginx_exe=NGINX,
            nginx_prefix=str(work), nginx_main_conf=str(work / "nginx.conf"))
        up = regenerate(settings, require_check=True)
        nginx = start_nginx(up.path, work, port)
        try:
            yield Front(port)
        finally:
            nginx.stop()
    finally:
        ui.stop()
        log.close()
        api.stop()
        with connect(ops_env.settings, autocommit=True) as conn:
            replace_allow_list(conn, [])


def test_the_explorer_page_and_health_come_through_for_users_only(front):
    status, body = front.get(USER, "/streamlit/")
    assert status == 200 and b"<div id=\"root\">" in body
    assert front.get(USER, "/streamlit/_stcore/health") == (200, b"ok")
    assert front.get(STRANGER, "/streamlit/")[0] == 403


def test_the_streamlit_websocket_upgrades_through_the_proxy(front):
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", front.port), timeout=30,
                                  source_address=(USER, 0)) as sock:
        sock.sendall((f"GET /streamlit/_stcore/stream HTTP/1.1\r\nHost: 127.0.0.1:{front.port}"
                      f"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        status, headers = read_head(sock)
    assert " 101 " in status + " ", status
    assert headers["upgrade"].lower() == "websocket"
    assert headers["sec-websocket-accept"] == accept_key(key)


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_a_visit_through_nginx_is_counted_for_its_address_not_unknown(front, ops_env):
    """Issue 13: page views behind Nginx were recorded as "unknown" (Streamlit reports a
    loopback peer as None), so weekly active users could not be counted by person."""
    playwright = pytest.importorskip("playwright.sync_api")
    with connect(ops_env.settings, autocommit=True) as conn:
        conn.execute("DELETE FROM ui_page_views")
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{front.port}/streamlit/", timeout=60_000)
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                                   timeout=60_000)
        finally:
            browser.close()
    deadline = time.monotonic() + 30
    while True:
        with connect(ops_env.settings, autocommit=True) as conn:
            clients = {r[0] for r in conn.execute("SELECT client FROM ui_page_views")}
        if clients or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # the browser reached Nginx from 127.0.0.1: that address, as Nginx forwarded it
    assert clients == {"127.0.0.1"}, clients
