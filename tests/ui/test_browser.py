"""A real browser (Debian's chromium through Playwright) against a real explorer and API.

The explorer runs as `fmw ui` does (a Streamlit child process, here under ``/streamlit/`` as
behind Nginx); the API runs in-process under waitress. The test opens Home and Overview at
1366x768, applies a filter with the mouse and keyboard, checks the table, downloads the CSV and
compares it byte for byte with the v1 API's answer for the same filter. Screenshots are kept in
a folder under the temp dir whose path is printed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from api.app import create_app
from api.security import RateLimiter
from api.server import start
from api.services import build_services
from query import Engine, QuerySpec
from tests.ui.conftest import UiEnv
from ui.config import ui_config
from ui.launch import start_ui

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's chromium (apt-get install chromium)")


@dataclasses.dataclass
class Stack:
    ui_url: str
    api_url: str
    env: UiEnv
    pid: int


def remote_hosts(pid: int) -> set[str]:
    """Addresses the explorer process (and its children) is connected to."""
    proc = psutil.Process(pid)
    return {c.raddr.ip for p in [proc, *proc.children(recursive=True)]
            for c in p.net_connections(kind="inet") if c.raddr}


@pytest.fixture(scope="module")
def stack(ui_env: UiEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    svc = build_services(ui_env.settings, dev_rate=RateLimiter(100_000))
    api = start(create_app(ui_env.settings, svc), ui_env.settings)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = dataclasses.replace(ui_config(ui_env.settings), port=port, base_url_path="streamlit",
                             api_url=api.url)
    log = (tmp_path_factory.mktemp("ui-log") / "streamlit.log").open("wb")
    child = start_ui(ui_env.settings, ui, output=log)
    try:
        child.wait_ready()
        stack = Stack(child.url, api.url, ui_env, child.proc.pid)
        yield stack
        # the explorer never reached outside this machine (no telemetry, no version check)
        assert remote_hosts(stack.pid) <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    finally:
        child.stop()
        log.close()
        api.stop()
        svc.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(tempfile.gettempdir()) / "fmw-ui-screenshots"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nexplorer screenshots: {folder}")
    return folder


@pytest.fixture
def browser_page(tmp_path: Path, stack: Stack) -> Iterator[Page]:
    """A fresh chromium profile; afterwards, every request the page made went to the
    explorer itself (no fonts, scripts or telemetry from the internet)."""
    requested: list[str] = []
    with playwright_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, viewport=VIEWPORT, accept_downloads=True)
        try:
            page = ctx.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.set_default_timeout(30_000)
            yield page
        finally:
            ctx.close()
    origin = stack.ui_url.split("/streamlit/")[0]
    outside = [u for u in requested if not u.startswith((origin, "data:", "blob:"))]
    assert requested and not outside, outside


def settle(page: Page) -> None:
    """Wait until Streamlit finished the current run and every element is drawn."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    page.wait_for_function("""() => !document.querySelector("[data-testid='stSkeleton']")
        && [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
           .every(c => c.querySelector('canvas, svg'))""")
    page.wait_for_timeout(500)


def matched(page: Page) -> int:
    text = page.get_by_text(re.compile(r"feature\(s\) match")).first.inner_text()
    return int(text.split()[0].replace(",", ""))


def test_home_shows_cards_status_and_trend(stack: Stack, browser_page, shots: Path):
    page = browser_page
    page.goto(stack.ui_url)
    page.get_by_role("heading", name="FMW explorer").wait_for()
    page.get_by_test_id("stMetric").first.wait_for()
    settle(page)
    labels = page.get_by_test_id("stMetricLabel").all_inner_texts()
    assert labels == ["Created", "Updated", "Deleted", "Errors"]
    assert page.get_by_text(f"v{stack.env.versions[1]:06d}").count() >= 1
    assert page.get_by_text(re.compile("fresh: .* old")).count() == 1
    page.screenshot(path=str(shots / "home.png"))


def test_overview_filter_table_and_csv_match_the_api(stack: Stack, browser_page, shots: Path):
    page = browser_page
    page.goto(stack.ui_url)
    page.get_by_role("link", name="Overview").click()
    page.get_by_test_id("stDataFrame").wait_for()
    settle(page)
    assert "/streamlit/overview" in page.url
    total = matched(page)
    assert total == 65
    # filter with the mouse and keyboard: Status = disabled
    page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").first.click()
    page.get_by_role("option", name=re.compile(r"^disabled · ")).click()
    page.keyboard.press("Escape")
    page.wait_for_url(re.compile(r"status=disabled"))
    settle(page)
    engine = Engine(stack.env.settings)
    want = engine.count(QuerySpec(filters=(("status", "disabled"),)))
    engine.close()
    assert matched(page) == want < total
    grid = page.get_by_test_id("stDataFrame")
    cells = grid.locator("[data-testid^='glide-cell-4-']").all_inner_texts()  # status column
    assert cells and set(c for c in cells if c) == {"disabled"}
    page.screenshot(path=str(shots / "overview-filtered.png"))
    with page.expect_download() as info:
        page.get_by_test_id("stDownloadButton").filter(has_text="CSV").click()
    download = info.value
    body = Path(download.path()).read_bytes()
    assert download.suggested_filename == f"features-v{stack.env.versions[1]:06d}.csv"
    columns = ("feature_group,feature_name,mcc,mnc,status,value,operator,country,region,owner,"
               "last_changed_at")
    url = f"{stack.api_url}/api/v1/features?status=disabled&columns={columns}&bom=true"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310
        api_body = resp.read()
    assert body == api_body
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) - 1 == want and {r[4] for r in rows[1:]} == {"disabled"}


@pytest.mark.parametrize("path", ["feature?feature_group=vonr&feature_name=Feature+01",
                                  "history", "sql", "dev"])
def test_the_other_pages_render_at_1366x768(stack: Stack, browser_page, shots: Path, path):
    page = browser_page
    page.goto(stack.ui_url + path)
    page.get_by_test_id("stMainBlockContainer").wait_for()
    settle(page)
    assert page.get_by_test_id("stException").count() == 0
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"]
    page.screenshot(path=str(shots / f"{path.split('?')[0]}.png"))
