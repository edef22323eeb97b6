"""A real browser (Debian's chromium through Playwright) against a real explorer and API.

The explorer runs as `fmw ui` does (see `tests.ui.browser` for the stack). The test opens Home
and Overview at 1366x768, applies a filter with the mouse and keyboard, checks the table,
downloads the CSV and compares its cells with the v1 API's answer for the same filter.
Screenshots are kept in a folder under the temp dir whose path is printed.
"""

from __future__ import annotations

import csv
import io
import re
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from query import Engine, QuerySpec
from tests.ui.browser import VIEWPORT, Stack, matched, needs_chromium, settle

pytestmark = needs_chromium


def test_home_shows_cards_status_and_trend(stack: Stack, browser_page, shots: Path):
    page = browser_page
    page.goto(stack.ui_url)
    page.get_by_role("heading", name="FMW explorer").wait_for()
    page.get_by_test_id("stMetric").first.wait_for()
    settle(page)
    labels = page.get_by_test_id("stMetricLabel").all_inner_texts()
    # the operations row shows once the explorer has read the ledger (its background thread)
    ops = ["Bad rows open", "Incidents this month", "API p95, last 24 h"]
    assert labels in (["Created", "Updated", "Deleted", "Errors"],
                      [*ops, "Created", "Updated", "Deleted", "Errors"]), labels
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
        page.get_by_test_id("fmwDownload").filter(has_text="CSV").click()
    download = info.value
    body = Path(download.path()).read_bytes()
    assert download.suggested_filename == \
        f"features-status=disabled-v{stack.env.versions[1]:06d}.csv"
    columns = ("feature_group,feature_name,mcc,mnc,status,value,notes,operator,country,region,"
               "owner,last_changed_at")
    url = f"{stack.api_url}/api/v1/features?status=disabled&columns={columns}"
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310
        api_rows = list(csv.reader(io.StringIO(resp.read().decode("utf-8"))))
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, for Excel
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) - 1 == want and {r[4] for r in rows[1:]} == {"disabled"}
    # the same cells as the API's, times shown in the explorer's zone (UTC here) and labelled
    assert [re.sub(r" \(.*\)$", "", h) for h in rows[0]] == api_rows[0] == columns.split(",")
    assert rows[0][-1] == "last_changed_at (UTC)"
    assert [r[:-1] for r in rows[1:]] == [r[:-1] for r in api_rows[1:]]
    assert [datetime.fromisoformat(r[-1]).replace(tzinfo=UTC) for r in rows[1:]] == \
        [datetime.fromisoformat(r[-1] + ":00") for r in api_rows[1:]]


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
