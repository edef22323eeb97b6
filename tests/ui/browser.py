"""A real browser (Debian's chromium through Playwright) against a real explorer and API.

Shared by the ``test_browser*.py`` modules (`tests/ui/conftest.py` makes the fixtures visible):
`stack` runs the explorer as `fmw ui` does (a Streamlit child process under ``/streamlit/``, as
behind Nginx) and the API in-process under waitress; `browser_page` is a fresh chromium profile
whose every request must stay on this machine; `open_browser` makes more (another size, a second
person opening a shared link). Screenshots go to ``<basetemp>/screenshots``, whose path is
printed.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from api.app import create_app
from api.security import RateLimiter
from api.server import start
from api.services import build_services
from ui.config import ui_config
from ui.launch import start_ui

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from tests.ui.conftest import UiEnv

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}
#: Mark a browser test module with this (``pytestmark = needs_chromium``).
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stack(ui_env: UiEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    svc = build_services(ui_env.settings, dev_rate=RateLimiter(100_000))
    api = start(create_app(ui_env.settings, svc), ui_env.settings)
    ui = dataclasses.replace(ui_config(ui_env.settings), port=free_port(),
                             base_url_path="streamlit", api_url=api.url)
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


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's screenshot folder (under pytest's temp dir, so parallel runs keep theirs)."""
    folder = tmp_path_factory.mktemp("screenshots", numbered=False)
    print(f"\nexplorer screenshots: {folder}")
    return folder


@contextmanager
def open_browser(profile: Path, stack: Stack, viewport: dict[str, int] | None = None
                 ) -> Iterator[BrowserContext]:
    """A chromium with a fresh profile; afterwards, every request its pages made went to the
    explorer itself (no fonts, scripts or telemetry from the internet)."""
    pw_api = pytest.importorskip("playwright.sync_api")
    requested: list[str] = []
    with pw_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport=viewport or VIEWPORT, accept_downloads=True)
        ctx.on("request", lambda r: requested.append(r.url))
        ctx.set_default_timeout(30_000)
        try:
            yield ctx
        finally:
            ctx.close()
    origin = stack.ui_url.split("/streamlit/")[0]
    outside = [u for u in requested if not u.startswith((origin, "data:", "blob:"))]
    assert requested and not outside, outside


@pytest.fixture
def browser_page(tmp_path: Path, stack: Stack) -> Iterator[Page]:
    """One page of a fresh chromium at 1366x768."""
    with open_browser(tmp_path / "chromium-profile", stack) as ctx:
        yield ctx.pages[0] if ctx.pages else ctx.new_page()


def settle(page: Page) -> None:
    """Wait until Streamlit finished the current run and every element is drawn."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    page.wait_for_function("""() => !document.querySelector("[data-testid='stSkeleton']")
        && [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
           .every(c => c.querySelector('canvas, svg'))""")
    page.wait_for_timeout(500)


def matched(page: Page) -> int:
    """The Overview's "N feature(s) match" figure."""
    text = page.get_by_text(re.compile(r"feature\(s\) match")).first.inner_text()
    return int(text.split()[0].replace(",", ""))


def api_total(stack: Stack, path: str, pairs: Sequence[tuple[str, str]]) -> int:
    """The v1 API's X-Total-Count for `path` (``/api/v1/features[/group]``) with `pairs`."""
    query = urllib.parse.urlencode([*pairs, ("limit", "1")])
    with urllib.request.urlopen(f"{stack.api_url}{path}?{query}", timeout=30) as resp:  # noqa: S310
        resp.read()
        return int(resp.headers["X-Total-Count"])


def url_query(page: Page) -> dict[str, list[str]]:
    """The page URL's query parameters (all values of each)."""
    return urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)


def clipped(page: Page, selector: str) -> list[dict[str, Any]]:
    """The visible elements matching `selector` that reach past the viewport's width."""
    return list(page.evaluate("""(sel) => {
        const w = document.documentElement.clientWidth;
        return [...document.querySelectorAll(sel)]
            .map(e => [e, e.getBoundingClientRect()])
            .filter(([e, r]) => r.width > 0 && r.height > 0
                    && (r.left < 0 || r.right > w + 0.5))
            .map(([e, r]) => ({testid: e.dataset.testid, text: e.innerText.slice(0, 40),
                              left: r.left, right: r.right, width: w}));
    }""", selector))


def truncated(page: Page, selector: str) -> list[dict[str, Any]]:
    """Visible elements matching `selector` whose text is cut (ellipsis or hidden overflow)."""
    return list(page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
        .filter(e => {
            const cs = getComputedStyle(e), r = e.getBoundingClientRect();
            const cuts = cs.textOverflow === 'ellipsis' || cs.overflowX === 'hidden'
                || cs.overflowX === 'clip';
            return r.width > 0 && r.height > 0 && cuts && (e.innerText || '').trim()
                && e.scrollWidth > e.clientWidth + 1;
        })
        .map(e => ({testid: e.closest('[data-testid]')?.dataset.testid,
                    text: (e.innerText || '').slice(0, 40), shown: e.clientWidth,
                    needs: e.scrollWidth}))""", selector))
