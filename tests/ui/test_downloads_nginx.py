"""The download route behind Debian's nginx: it lies under ``location /streamlit/``, so the
allow list that guards the pages guards the files too (issue 12 §4).

A real chromium opens Overview through nginx and clicks XLSX; the link fetched from an
address on the allow list (with that browser's cookie) gives the same file, from an address
not on it gets nginx's 403.
"""

from __future__ import annotations

import http.client
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.access import parse_entries, replace_allow_list
from ledger.db import connect
from ops.config import with_values
from ops.nginx_run import regenerate
from tests.ops.conftest import OpsEnv, free_port, ops_env  # noqa: F401 - the fixture
from tests.ops.nginxproc import NGINX, start_nginx
from ui.config import ui_config
from ui.launch import start_ui

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")]
USER, STRANGER = "127.0.0.2", "127.0.0.4"


def get(port: int, source: str, path: str, cookie: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Cookie": cookie})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def front(ops_env: OpsEnv) -> Iterator[int]:  # noqa: F811 - the imported fixture
    with connect(ops_env.settings, autocommit=True) as conn:
        replace_allow_list(conn, parse_entries([{"cidr": USER, "role": "user", "note": "desk"}]))
    work = ops_env.root / "nginx-downloads"
    settings = with_values(ops_env.settings, ui_port=free_port(),
                           ui_base_url_path="/streamlit/")
    log = open(ops_env.root / "ui-downloads.log", "wb")  # noqa: SIM115 - closed below
    ui = start_ui(settings, ui_config(settings), output=log)
    port = free_port()
    try:
        ui.wait_ready()
        settings = with_values(
            settings, nginx_listen="127.0.0.1", nginx_port=port,
            nginx_conf=str(work / "fmw.conf"), nginx_exe=NGINX, nginx_prefix=str(work),
            nginx_main_conf=str(work / "nginx.conf"))
        nginx = start_nginx(regenerate(settings, require_check=True).path, work, port)
        try:
            yield port
        finally:
            nginx.stop()
    finally:
        ui.stop()
        log.close()
        with connect(ops_env.settings, autocommit=True) as conn:
            replace_allow_list(conn, [])


def test_an_xlsx_download_through_nginx_obeys_the_allow_list(front: int, tmp_path: Path):
    import openpyxl
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu"], accept_downloads=True)
        try:
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{front}/streamlit/overview", timeout=60_000)
            page.get_by_test_id("stDataFrame").wait_for(timeout=60_000)
            page.wait_for_selector(
                "[data-testid='stApp'][data-test-script-state='notRunning']")
            link = page.get_by_test_id("fmwDownload").filter(has_text="XLSX")
            with page.expect_download() as info:
                link.click()
            body = Path(info.value.path()).read_bytes()
            href = link.get_attribute("href") or ""
            cookie = "; ".join(f"{c['name']}={c['value']}" for c in ctx.cookies())
        finally:
            ctx.close()
    sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
    assert sheet.max_row == 41  # the header and the 40 rows of the snapshot
    assert href.startswith("/streamlit/fmw/export/")
    status, again = get(front, USER, href, cookie)
    assert status == 200 and again[:2] == b"PK"  # a zip: the same kind of file
    status, refused = get(front, STRANGER, href, cookie)
    assert status == 403 and b"PK" not in refused[:2]
