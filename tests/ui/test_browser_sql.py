"""The SQL page's query is in the URL, like every page's state (issue 12, section 4): a shared
link opens with the query run, and back brings the previous query back."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from tests.ui.browser import Stack, needs_chromium, open_browser, settle, url_query

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = needs_chromium
FIRST = "SELECT feature_group, count(*) AS n FROM features GROUP BY ALL ORDER BY 1"
SECOND = "SELECT mcc FROM features WHERE mcc = '262' ORDER BY 1"


def run_query(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Query").fill(text)
    page.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"[?&]sql=" + re.escape(urllib.parse.quote_plus(text)[:20])))
    settle(page)


def shown(page: Page) -> tuple[str, str]:
    """The query in the box and the result's note ("3 row(s) in ... ms")."""
    note = page.get_by_text(re.compile(r"row\(s\) in \d+ ms")).first.inner_text()
    return page.get_by_role("textbox", name="Query").input_value(), note.split(" in ")[0]


def test_a_shared_sql_link_opens_with_the_query_run(stack: Stack, tmp_path: Path,
                                                    shots: Path):
    with open_browser(tmp_path / "profile", stack) as ctx:
        page = ctx.new_page()
        page.goto(stack.ui_url + "sql")
        settle(page)
        run_query(page, FIRST)
        assert url_query(page)["sql"] == [FIRST]
        assert shown(page) == (FIRST, "3 row(s)")
        run_query(page, SECOND)
        assert shown(page) == (SECOND, "11 row(s)")
        page.go_back()  # the previous query, run again
        page.wait_for_function("() => new URLSearchParams(location.search).get('sql')"
                               f" === {FIRST!r}")
        settle(page)
        assert shown(page) == (FIRST, "3 row(s)")
        link = page.url
        other = ctx.new_page()  # a colleague opens the link: a new session
        other.goto(link)
        settle(other)
        assert shown(other) == (FIRST, "3 row(s)")
        assert other.get_by_test_id("stDataFrame").count() == 1
        other.screenshot(path=str(shots / "sql-shared-link.png"))
        other.get_by_role("link", name="Home").click()  # away and back through the menu
        settle(other)
        other.get_by_role("link", name="SQL").click()
        other.wait_for_url(re.compile(r"/sql\?sql="))
        settle(other)
        assert url_query(other)["sql"] == [FIRST] and shown(other) == (FIRST, "3 row(s)")
