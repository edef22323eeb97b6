"""The Overview in a real browser: header sorting on the server, 1024-1920 px wide, the API
link (issue 12, sections 2 and 4)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ui.browser import (
    Stack,
    api_total,
    clipped,
    matched,
    needs_chromium,
    open_browser,
    settle,
    truncated,
    url_query,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = needs_chromium
#: Every control of the page (widgets, their labels and buttons), main area and sidebar.
CONTROLS = ", ".join(f"[data-testid='{t}']" for t in (
    "stButton", "stDownloadButton", "stPopover", "stSelectbox", "stMultiSelect", "stCheckbox",
    "stNumberInput", "stTextInput", "stMarkdown", "stCaptionContainer", "stDataFrame"))
TEXTS = ", ".join(f"{area} {inner}" for area in ("[data-testid='stMain']",
                                                 "[data-testid='stSidebar']")
                  for inner in ("button *", "label *", "[data-testid='stCaptionContainer']",
                                "[data-testid='stMarkdownContainer'] p"))


def api_rows(stack: Stack, query: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{stack.api_url}/api/v1/features?{query}&format=json",  # noqa: S310
                                timeout=30) as resp:
        body = json.load(resp)
    return list(body["data"] if isinstance(body, dict) else body)


def column(page: Page, index: int) -> list[str]:
    """The grid's cells of one column (0 = the first shown), top to bottom."""
    return page.locator(f"[data-testid^='glide-cell-{index}-']").all_inner_texts()


def click_header(page: Page, x: float = 20) -> None:
    """Click the grid's header row `x` px from its left edge (the grid is a canvas)."""
    box = page.get_by_test_id("stDataFrame").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + x, box["y"] + 18)


def test_a_header_click_sorts_every_row_on_the_server(stack: Stack, browser_page: Page,
                                                      shots: Path):
    """Regression (issue 12): a header click sorted only the page shown (on 1M rows MCC
    descending showed 250 on top; the maximum is 999)."""
    page = browser_page
    page.goto(stack.ui_url + "overview?size=10&columns=mcc,feature_name,status")
    settle(page)
    assert matched(page) > 10  # several pages: a page-only sort would differ
    for order in ("mcc", "-mcc"):
        click_header(page)
        page.wait_for_url(re.compile(rf"order={re.escape(order)}(&|$)"))
        settle(page)
        want = api_rows(stack, f"order={order}&columns=mcc&limit=10")
        assert column(page, 0)[:10] == [r["mcc"] for r in want], order
        box = page.get_by_test_id("stMain").get_by_test_id("stSelectbox").first
        assert box.locator("input").input_value() == "Sort by MCC"
        desc = page.get_by_test_id("stMain").get_by_test_id("stCheckbox").filter(
            has_text="Descending").locator("input")
        assert desc.is_checked() == order.startswith("-")
    assert column(page, 0)[0] == "658"  # the largest MCC, from the whole result
    page.get_by_role("button", name="Next ▶").click()
    page.wait_for_url(re.compile(r"page=2"))
    settle(page)
    want = api_rows(stack, "order=-mcc&columns=mcc&limit=10&offset=10")
    assert column(page, 0)[:10] == [r["mcc"] for r in want]
    page.screenshot(path=str(shots / "overview-sorted-by-header.png"))
    # the sort box drives the same order, and the URL keeps it for a shared link
    assert url_query(page)["order"] == ["-mcc"]


def test_the_grid_offers_no_sort_or_download_of_only_the_page(stack: Stack,
                                                              browser_page: Page):
    """The grid's column menu and toolbar would sort or save only the rows shown."""
    page = browser_page
    page.goto(stack.ui_url + "overview?size=10&columns=mcc")
    settle(page)
    box = page.get_by_test_id("stDataFrame").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 40, box["y"] + 18)  # the header's menu icon
    page.wait_for_timeout(300)
    page.mouse.move(box["x"] + box["width"] - 18, box["y"] + 18)
    page.mouse.click(box["x"] + box["width"] - 18, box["y"] + 18)
    menu = page.get_by_test_id("stDataFrameColumnMenu")
    menu.get_by_text("Autosize").wait_for()
    assert not menu.get_by_text("Sort ascending").is_visible()
    assert not menu.get_by_text("Sort descending").is_visible()
    page.keyboard.press("Escape")
    page.mouse.move(box["x"] + 40, box["y"] + 60)  # the toolbar shows on hover
    page.get_by_test_id("stElementToolbar").first.wait_for()
    assert page.get_by_role("button", name="Download as CSV").count() == 0 or \
        not page.get_by_role("button", name="Download as CSV").is_visible()
    assert "order" not in url_query(page)


@pytest.mark.parametrize("width", [1024, 1280, 1920])
def test_every_overview_control_fits_from_1024_to_1920_px(stack: Stack, tmp_path: Path,
                                                          shots: Path, width: int):
    """Regression (issue 12): at 1024 px the Overview's controls were cut off."""
    with open_browser(tmp_path / "profile", stack, {"width": width, "height": 900}) as ctx:
        page = ctx.new_page()
        page.goto(stack.ui_url + "overview?status=enabled&size=25")
        settle(page)
        page.screenshot(path=str(shots / f"overview-{width}.png"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert clipped(page, CONTROLS) == []
        assert truncated(page, TEXTS) == []
        for name in ("Columns", "◀ Prev", "Next ▶"):
            assert page.get_by_role("button", name=name).first.is_visible(), name
        for name in ("XLSX", "CSV"):  # the downloads are links drawn as buttons
            assert page.get_by_test_id("fmwDownload").filter(has_text=name).is_visible(), name
        page.get_by_test_id("stPopoverButton").click()  # the column picker opens filled in
        picker = page.get_by_test_id("stPopoverBody").get_by_test_id("stMultiSelect")
        assert picker.locator("[data-tag]").count() == 12
        assert clipped(page, "[data-testid='stPopoverBody']") == []


def test_headers_are_human_and_the_api_link_is_absolute_and_clickable(stack: Stack,
                                                                      browser_page: Page):
    page = browser_page
    page.goto(stack.ui_url + "overview?feature_group=volte&status=enabled")
    settle(page)
    headers = page.get_by_test_id("stDataFrame").locator("th[role='columnheader']").all_inner_texts()
    assert headers[:7] == ["Group", "Feature", "MCC", "MNC", "Status", "Value", "Notes"]
    assert headers[-1].startswith("Last changed")
    link = page.get_by_test_id("stMain").locator("a[href*='/api/v1/features']")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{stack.api_url}/api/v1/features/volte?status=enabled&columns=")
    with urllib.request.urlopen(href, timeout=30) as resp:  # noqa: S310
        assert int(resp.headers["X-Total-Count"]) == matched(page)
    assert matched(page) == api_total(stack, "/api/v1/features/volte", [("status", "enabled")])
    for box in ("MCC", "MNC"):  # an empty box says so, not a value that looks entered
        placeholder = page.get_by_role("textbox", name=box).get_attribute("placeholder")
        assert placeholder == "any"
    # long names and notes readable: "Wrap long text" makes the rows tall enough to wrap
    grid = page.get_by_test_id("stDataFrame")
    before = grid.bounding_box()
    page.get_by_test_id("stPopoverButton").click()
    page.get_by_test_id("stPopoverBody").get_by_text("Wrap long text").click()
    settle(page)
    after = grid.bounding_box()
    assert before and after and after["height"] > before["height"]
