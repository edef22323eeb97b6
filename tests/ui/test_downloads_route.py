"""The Overview's downloads come from the explorer's own route (issue 12 §4: a full export
through ``st.download_button`` grew Streamlit by 500 MiB and kept most of it).

A real chromium clicks XLSX on Overview under ``/streamlit/`` and gets the file the query
layer makes for the same view; the link only works for the browser that was shown it, and a
forged, expired or foreign token is refused without a traceback.
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from query import Engine, QuerySpec
from tests.ui.browser import Stack, needs_chromium, open_browser, settle
from ui import reads
from ui.downloads import Tickets, browser_id, link, route_path
from ui.server import disposition

if TYPE_CHECKING:
    from playwright.sync_api import Page

COLUMNS = ("feature_group", "feature_name", "mcc", "mnc", "status", "value", "notes",
           "operator", "country", "region", "owner", "last_changed_at")


def _get(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _overview(page: Page, stack: Stack, query: str = "") -> None:
    page.goto(f"{stack.ui_url}overview{'?' + query if query else ''}")
    page.get_by_test_id("stDataFrame").wait_for()
    settle(page)


def _cells(body: bytes) -> list[list[object]]:
    import openpyxl
    sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@needs_chromium
def test_one_click_on_xlsx_downloads_the_query_layers_file_for_the_view(
        stack: Stack, tmp_path: Path, shots: Path):
    version = stack.env.versions[1]
    with open_browser(tmp_path / "profile", stack) as ctx:
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        _overview(page, stack, "status=disabled")
        buttons = page.get_by_test_id("fmwDownload")
        labels = [t.replace("download", "").strip() for t in buttons.all_inner_texts()]
        assert labels == ["XLSX", "CSV"]  # XLSX first
        page.screenshot(path=str(shots / "overview-downloads.png"))
        href = buttons.first.get_attribute("href") or ""
        assert re.fullmatch(r"/streamlit/fmw/export/[A-Za-z0-9_-]{22}", href), href
        with page.expect_download() as info:
            buttons.filter(has_text="XLSX").click()
        download = info.value
        body = Path(download.path()).read_bytes()
        assert download.suggested_filename == f"features-status=disabled-v{version:06d}.xlsx"
        engine = Engine(stack.env.settings)
        try:
            spec = QuerySpec(filters=(("status", "disabled"),), columns=COLUMNS)
            want = reads.export_bytes(engine, version, spec, "xlsx", "UTC")
            count = engine.count(QuerySpec(filters=(("status", "disabled"),)))
        finally:
            engine.close()
        got = _cells(body)
        assert got == _cells(want) and len(got) - 1 == count > 0
        assert {row[4] for row in got[1:]} == {"disabled"}
        # the same link works again for this browser (a second click), not for another
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in ctx.cookies())
        origin = stack.ui_url.split("/streamlit/")[0]
        status, headers, again = _get(origin + href, cookie)
        assert status == 200 and _cells(again) == got
        assert headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        assert headers["content-disposition"] == disposition(download.suggested_filename)
        assert headers["cache-control"] == "no-store"
        status, _, text = _get(origin + href)  # no cookie: not the browser it was made for
        assert status == 403 and b"Traceback" not in text
        csv_href = buttons.filter(has_text="CSV").get_attribute("href") or ""
        status, headers, csv = _get(origin + csv_href, cookie)
        assert status == 200 and headers["content-type"].startswith("text/csv")
        assert csv.startswith(b"\xef\xbb\xbf") and csv.count(b"\n") == count + 1


@pytest.mark.parametrize("token", ["AAAAAAAAAAAAAAAAAAAAAA", "x" * 300, "..%2f..%2fetc",
                                   "%00", "0"])
def test_a_forged_token_gets_404_without_a_traceback(stack: Stack, token: str):
    origin = stack.ui_url.split("/streamlit/")[0]
    status, _, text = _get(f"{origin}/streamlit/fmw/export/{token}")
    # a path trick or NUL stops at Streamlit's path check (400) before the route
    assert status == (400 if "%" in token else 404), (status, text[:200])
    assert b"Traceback" not in text and b"File \"" not in text


def test_tokens_expire_are_bound_to_the_browser_and_renewed_while_shown():
    now = [1000.0]
    alive = {"s1"}
    tickets = Tickets(session_alive=lambda s: s in alive, clock=lambda: now[0])
    engine = object()
    spec = QuerySpec(filters=(("status", "disabled"),))
    mine = browser_id("2|00000000|0102030405060708090a0b0c0d0e0f10|1700000000")
    # the same token under another mask (Streamlit re-masks the cookie on each page load)
    assert mine == browser_id("2|01010101|0003020504070609080b0a0d0c0f0e11|1700000001")
    token = tickets.issue(engine, 2, spec, "xlsx", tz="UTC", name="f.xlsx",  # type: ignore[arg-type]
                          session="s1", browser=mine)
    assert len(token) == 22  # 128 random bits
    assert tickets.issue(engine, 2, spec, "xlsx", tz="UTC", name="f.xlsx",  # type: ignore[arg-type]
                         session="s1", browser=mine) == token
    ticket = tickets.claim(token, mine)
    assert ticket is not None and ticket.spec == spec
    with pytest.raises(PermissionError):
        tickets.claim(token, browser_id("2|00000000|ffffffffffffffffffffffffffffffff|1"))
    with pytest.raises(PermissionError):
        tickets.claim(token, None)
    assert tickets.claim("forged", mine) is None
    now[0] += 3600  # past TTL_S, but the page that shows it is still open
    assert tickets.claim(token, mine) is not None
    alive.clear()  # the page was closed
    assert tickets.claim(token, mine) is None
    # another view replaces the session's token: only the newest works
    now[0] += 10
    first = tickets.issue(engine, 2, spec, "csv", tz="UTC", name="a.csv",  # type: ignore[arg-type]
                          session="s2", browser=None)
    second = tickets.issue(engine, 2, QuerySpec(), "csv", tz="UTC", name="b.csv",  # type: ignore[arg-type]
                           session="s2", browser=None)
    assert first != second and tickets.claim(first, None) is None
    assert tickets.claim(second, None) is not None
    assert len(tickets) == 1  # the dead ones were swept


def test_the_route_lives_under_the_base_path_nginx_guards():
    from ops.nginx import UI_PATH
    assert route_path("streamlit") == "/streamlit/fmw/export/{token}"
    assert route_path("/streamlit/") == route_path("streamlit")
    assert link("streamlit", "T").startswith(UI_PATH)
    assert route_path("") == "/fmw/export/{token}"
    assert disposition("features-한국어=x.xlsx") == (
        "attachment; filename=\"features-___=x.xlsx\"; "
        "filename*=UTF-8''features-%ED%95%9C%EA%B5%AD%EC%96%B4%3Dx.xlsx")
