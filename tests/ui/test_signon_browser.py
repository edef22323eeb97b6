"""Sign-in, roles and row scopes in a real browser (issue 14), through Nginx over HTTPS.

Everything is real: the OpenID provider (`tests/oidc_provider.py`, node's oidc-provider), the
API (waitress, ``auth.mode = "oidc"``), the explorer as `fmw ui` starts it (its sign-in plan
written by `ui.signon`), Debian's nginx with a certificate from `ops.tls.make_selfsigned`, and
Debian's chromium, which trusts only that certificate's key (``--ignore-certificate-errors-
spki-list``). A person signs in through the provider's own form.

Carol (group fmw-ims) sees volte and rcs on MCC 450 only; Alice (fmw-admins) everything; Dan's
group (fmw-stored) has a role only through an entry stored with ``PUT /api/dev/roles``: the
explorer takes roles from the API's full map (``GET /api/me``). The expected figures are
counted from the synced source rows (`conftest.day2_rows`). A scoped user's download leaves an
audit row naming them (read from PostgreSQL), and an access token past its lifetime ends the
explorer's sign-in.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import psycopg
import pytest
import requests

from api.app import create_app
from api.security import RateLimiter
from api.server import start
from api.services import build_services
from fmw.authconfig import AuthConfig, RoleRule
from ops.config import with_values
from ops.nginx_run import regenerate
from ops.tls import make_selfsigned
from tests.ops.nginxproc import NGINX, start_nginx
from tests.ui.browser import ARGS, CHROMIUM, free_port, settle
from tests.ui.conftest import UiEnv, day2_rows
from ui.config import ui_config
from ui.launch import start_ui

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from tests.oidc_provider import Provider

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]
USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "alice-pw", "name": "Alice Admin", "email": "alice@fmw.test",
              "groups": ["fmw-admins"]},
    "carol": {"password": "carol-pw", "name": "Carol Scoped", "email": "carol@fmw.test",
              "groups": ["fmw-ims", "unrelated"]},
    "dan": {"password": "dan-pw", "name": "Dan Stored", "email": "dan@fmw.test",
            "groups": ["fmw-stored"]},
}
#: Dan's role: stored through the dev API only, never in the config.
STORED: dict[str, Any] = {"group": "fmw-stored", "role": "scoped", "feature_groups": ["vonr"], "mccs": ["310"]}
#: The API's clock leeway for access tokens here (the default 30 s would make the expiry test
#: wait that much longer).
LEEWAY_S = 2.0
ROLES = (RoleRule("fmw-admins", "admin"),
         RoleRule("fmw-ims", "scoped", feature_groups=("volte", "rcs"), mccs=("450",)))
CLIENT_ID, CLIENT_SECRET = "fmw-explorer", "explorer-secret"


def in_scope(group: str, mcc: str) -> bool:
    return group in ("volte", "rcs") and mcc == "450"


ALL = len(day2_rows())
IN_SCOPE = sum(1 for r in day2_rows() if in_scope(r[0], r[2]))
IN_STORED = sum(1 for r in day2_rows() if r[0] == "vonr" and r[2] == "310")


@dataclass
class Front:
    url: str  # https://127.0.0.1:PORT/streamlit/
    spki: str  # the server key's SPKI digest: the one certificate chromium accepts
    api_url: str
    idp: Provider
    key: str  # an admin API key
    pg_url: str
    schema: str


def _spki(cert_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def front(ui_env: UiEnv, tmp_path_factory: pytest.TempPathFactory,
          pg_url: str) -> Iterator[Front]:
    from tests.oidc_provider import Provider
    work = tmp_path_factory.mktemp("signon")
    https_port, http_port, ui_port = free_port(), free_port(), free_port()
    callback = f"https://127.0.0.1:{https_port}/streamlit/oauth2callback"
    idp = Provider.start(work / "idp", users=USERS, clients=[{
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [callback]}])
    auth = AuthConfig(mode="oidc", issuer=idp.issuer, client_id=CLIENT_ID,
                      client_secret=CLIENT_SECRET, audience="fmw-api", roles=ROLES,
                      redirect_uri=callback, leeway_s=LEEWAY_S)
    settings = dataclasses.replace(ui_env.settings, auth=auth)
    svc = build_services(settings, dev_rate=RateLimiter(100_000))
    api = start(create_app(settings, svc), settings)
    certs = make_selfsigned(work / "tls", ["127.0.0.1", "localhost"])
    settings = with_values(
        settings, ui_port=ui_port, ui_base_url_path="/streamlit/",
        api_port=int(api.url.rsplit(":", 1)[1]), nginx_listen="127.0.0.1",
        nginx_port=http_port, nginx_https_port=https_port,
        nginx_tls_cert=str(certs.server_cert), nginx_tls_key=str(certs.server_key),
        nginx_conf=str(work / "nginx" / "fmw.conf"), nginx_exe=NGINX,
        nginx_prefix=str(work / "nginx"), nginx_main_conf=str(work / "nginx" / "nginx.conf"))
    ui = dataclasses.replace(ui_config(settings), api_url=api.url)
    log = (work / "streamlit.log").open("wb")
    child = start_ui(settings, ui, output=log)
    nginx = None
    try:
        child.wait_ready()
        up = regenerate(settings, require_check=True)
        assert "ssl;" in up.path.read_text()
        nginx = start_nginx(up.path, work / "nginx", https_port)
        yield Front(f"https://127.0.0.1:{https_port}/streamlit/",
                    _spki(certs.server_cert.read_bytes()), api.url, idp, ui_env.key, pg_url,
                    settings.schema)
    finally:
        if nginx is not None:
            nginx.stop()
        child.stop()
        log.close()
        api.stop()
        svc.close()
        idp.stop()
    secrets_file = settings.data_dir / "secrets" / "streamlit-auth.toml"
    assert CLIENT_SECRET not in (work / "streamlit.log").read_text(errors="replace")
    if os.name == "posix":
        assert secrets_file.stat().st_mode & 0o077 == 0


@pytest.fixture
def browser(front: Front, tmp_path: Path) -> Iterator[BrowserContext]:
    pw_api = pytest.importorskip("playwright.sync_api")
    with pw_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=[*ARGS, f"--ignore-certificate-errors-spki-list={front.spki}"],
            viewport={"width": 1366, "height": 768}, accept_downloads=True)
        ctx.set_default_timeout(30_000)
        try:
            yield ctx
        finally:
            ctx.close()


def sign_in(page: Page, front: Front, user: str) -> None:
    """From the explorer's sign-in page through the provider's form and back."""
    page.goto(front.url, timeout=60_000)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(front.idp.issuer) + ".*"), timeout=60_000)
    page.locator("input[name='login']").fill(user)
    page.locator("input[name='password']").fill(USERS[user]["password"])
    page.locator("#submit").click()
    page.wait_for_url(re.compile(re.escape(front.url) + ".*"), timeout=60_000)
    sidebar(page).get_by_text(f"Signed in as {USERS[user]['name']}").wait_for(timeout=60_000)
    settle(page)


def sidebar(page: Page):  # noqa: ANN201 - a playwright Locator
    return page.get_by_test_id("stSidebar")


def nav_links(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("[data-testid='stTopNavLink'], "
                                            "[data-testid='stSidebarNavLink']").all_inner_texts()]


def matched(page: Page) -> int:
    text = page.get_by_text(re.compile(r"feature\(s\) match")).first.inner_text()
    return int(text.split()[0].replace(",", ""))


def group_options(page: Page) -> list[str]:
    box = sidebar(page).get_by_test_id("stSelectbox").first
    box.get_by_role("button", name="Open").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    names = [o.split(" · ")[0] for o in options.all_inner_texts()]
    page.keyboard.press("Escape")
    return names


def open_page(page: Page, front: Front, path: str) -> None:
    page.goto(front.url + path, timeout=60_000)
    page.get_by_test_id("stApp").wait_for()
    settle(page)


def sign_out(page: Page, front: Front) -> None:
    sidebar(page).get_by_role("button", name="Sign out").click()
    # the provider asks before it ends its own session, then sends the browser back
    page.locator("#logout").click(timeout=60_000)
    page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    assert page.url.startswith(front.url)


def download_audits(front: Front, subject: str) -> list[tuple[object, ...]]:
    """The audit rows of the explorer downloads of `subject`, from PostgreSQL."""
    with psycopg.connect(front.pg_url, autocommit=True) as conn:
        return conn.execute(
            f'SELECT user_name, method, path, query, status, detail FROM "{front.schema}".'
            "audit_log WHERE subject = %s AND path LIKE %s ORDER BY seq",
            (subject, "%/fmw/export")).fetchall()


def put_roles(front: Front, entries: list[dict[str, Any]]) -> dict[str, Any]:
    r = requests.put(f"{front.api_url}/api/dev/roles", json={"entries": entries},
                     headers={"Authorization": f"Bearer {front.key}"}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def grid_cells(page: Page) -> list[str]:
    return page.locator("[data-testid^='glide-cell-']").all_inner_texts()


def test_a_scoped_user_sees_and_downloads_only_their_rows(front: Front,
                                                         browser: BrowserContext):
    assert 0 < IN_SCOPE < ALL
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.goto(front.url, timeout=60_000)
    page.get_by_role("button", name="Sign in").wait_for()
    assert not page.get_by_test_id("stMetric").count()  # nothing before sign-in
    sign_in(page, front, "carol")
    assert "scoped" in sidebar(page).inner_text()
    links = nav_links(page)
    assert "Overview" in links and "API tokens" in links
    assert "Dev" not in links and "SQL" in links  # SQL over views restricted to the scope
    open_page(page, front, "overview")
    page.get_by_text(re.compile(r"feature\(s\) match")).wait_for()
    assert matched(page) == IN_SCOPE
    assert group_options(page) == ["(all groups)", "rcs", "volte"]
    link = page.get_by_test_id("fmwDownload").filter(has_text="CSV")
    with page.expect_download() as info:
        link.click()
    rows = list(csv.DictReader(io.StringIO(
        Path(info.value.path()).read_bytes().decode("utf-8-sig"))))
    assert len(rows) == IN_SCOPE
    assert all(in_scope(r["feature_group"], r["mcc"]) for r in rows)
    # audited with Carol before it was sent, as the API audits a scoped user's export
    audited = download_audits(front, "carol")
    assert len(audited) == 1
    assert audited[0][:2] == ("Carol Scoped", "GET")
    assert audited[0][2] == "/streamlit/fmw/export" and audited[0][3] == ""
    assert audited[0][4] == 200 and "by a scoped user (groups=rcs,volte mccs=450)" in str(audited[0][5])
    open_page(page, front, "dev")
    page.get_by_text(re.compile(r"This page is for .*admins.* only")).wait_for()
    assert not page.get_by_test_id("stTextInput").count()
    # SQL reads views restricted to the scope: a count over the whole table is the scope's
    open_page(page, front, "sql?" + urlencode({"sql": "SELECT count(*) AS n FROM features",
                                               "limit": "10"}))
    page.get_by_text("only the rows you may see").wait_for()
    page.get_by_text(re.compile(r"^1 row\(s\) in")).wait_for()  # the value: test_scoped_pages
    sign_out(page, front)
    open_page(page, front, "overview")  # signed out: the sign-in page, whatever the URL
    page.get_by_role("button", name="Sign in").wait_for()
    assert not page.get_by_text(re.compile(r"feature\(s\) match")).count()


def test_an_admin_sees_every_group_reaches_dev_and_makes_an_api_token(
        front: Front, browser: BrowserContext):
    page = browser.pages[0] if browser.pages else browser.new_page()
    sign_in(page, front, "alice")
    assert "admin" in sidebar(page).inner_text()
    assert {"Dev", "SQL", "API tokens"} <= set(nav_links(page))
    open_page(page, front, "overview")
    page.get_by_text(re.compile(r"feature\(s\) match")).wait_for()
    assert matched(page) == ALL
    assert group_options(page) == ["(all groups)", "rcs", "volte", "vonr"]
    open_page(page, front, "dev")
    page.get_by_role("heading", name="Dev").wait_for()
    assert not page.get_by_text("only.").count()
    # no key asked: the admin's own sign-in is the dev API credential
    page.get_by_text("Admin session with your sign-in (Alice Admin)").wait_for()
    assert not page.get_by_label("Admin API key").count()
    # a personal token through the API with the user's access token, shown once
    open_page(page, front, "tokens")
    page.get_by_label("Name").fill("browser test")
    page.get_by_role("button", name="Make token").click()
    page.get_by_text("shown only this once").wait_for(timeout=60_000)
    secret = page.get_by_test_id("stCode").inner_text().strip()
    r = requests.get(f"{front.api_url}/api/v1/features?format=json&limit=1",
                     headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert r.status_code == 200 and int(r.headers["X-Total-Count"]) == ALL
    page.get_by_test_id("stDataFrame").wait_for()
    open_page(page, front, "tokens")  # drawn again: the secret is gone
    assert not page.get_by_test_id("stCode").count()
    sign_out(page, front)


def test_a_role_stored_through_the_dev_api_applies_in_the_explorer_and_shows_in_dev(
        front: Front, browser: BrowserContext):
    assert 0 < IN_STORED < ALL
    put_roles(front, [STORED])  # with the admin key, as automation would
    try:
        page = browser.pages[0] if browser.pages else browser.new_page()
        # the admin sees the map in Dev without entering a key: config read-only, stored editable
        sign_in(page, front, "alice")
        open_page(page, front, "dev")
        page.get_by_text("Admin session with your sign-in").wait_for()
        assert not page.get_by_label("Admin API key").count()
        page.get_by_role("tab", name="Roles").click()
        page.get_by_text("From the config").wait_for()
        page.get_by_text("Stored entries").wait_for()
        page.get_by_role("button", name="Save role map").wait_for()
        settle(page)
        cells = grid_cells(page)
        assert {"fmw-admins", "fmw-ims", "fmw-stored", "vonr", "310"} <= set(cells), cells
        sign_out(page, front)
        # Dan's group is in no [[auth.roles]] of the config: his rows come from the stored entry
        sign_in(page, front, "dan")
        side = sidebar(page).inner_text()
        assert "scoped" in side and "groups=vonr mccs=310" in side
        assert "from the config" not in side
        open_page(page, front, "overview")
        page.get_by_text(re.compile(r"feature\(s\) match")).wait_for()
        assert matched(page) == IN_STORED
        assert group_options(page) == ["(all groups)", "vonr"]
        with page.expect_download() as info:
            page.get_by_test_id("fmwDownload").filter(has_text="CSV").click()
        rows = list(csv.DictReader(io.StringIO(
            Path(info.value.path()).read_bytes().decode("utf-8-sig"))))
        assert len(rows) == IN_STORED
        assert [(a[0], a[4]) for a in download_audits(front, "dan")] == [("Dan Stored", 200)]
        sign_out(page, front)
    finally:
        put_roles(front, [])


def test_an_access_token_past_its_lifetime_ends_the_explorers_sign_in(
        front: Front, browser: BrowserContext):
    """Streamlit's sign-in cookie lives 30 days; the explorer honours it only while the API
    accepts the sign-in's access token (here 8 s + the API's leeway)."""
    idp = front.idp
    idp.access_token_ttl = 8
    idp.restart(keys=idp.private_keys)  # same keys: the API's cached JWKS stays valid
    try:
        page = browser.pages[0] if browser.pages else browser.new_page()
        sign_in(page, front, "carol")
        signed_at = time.monotonic()
        time.sleep(max(0.0, signed_at + idp.access_token_ttl + LEEWAY_S + 2 - time.monotonic()))
        page.goto(front.url, timeout=60_000)  # a reload: a new session asks the API again
        page.get_by_text("Your sign-in has expired; sign in again.").wait_for(timeout=60_000)
        page.get_by_role("button", name="Sign in").wait_for()
        assert not sidebar(page).get_by_text("Signed in as").count()
        open_page(page, front, "overview")  # any page: the same sign-in page
        page.get_by_text("Your sign-in has expired; sign in again.").wait_for(timeout=60_000)
        assert not page.get_by_text(re.compile(r"feature\(s\) match")).count()
    finally:
        idp.access_token_ttl = 600
        idp.restart(keys=idp.private_keys)
