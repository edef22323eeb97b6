"""Issue 12 §2 and §4 in a real browser, as the engineers meet them: an explorer configured for
Seoul (`timezone = "Asia/Seoul"`) at 1366x768, Home, Feature, History and Dev.

Screenshots go to the folder `tests.ui.browser` prints (``fmw-ui-screenshots`` in the temp dir).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from api.app import create_app
from api.security import RateLimiter
from api.server import start
from api.services import build_services
from query import Engine, QuerySpec
from tests.ui.browser import Stack, free_port, needs_chromium, open_browser, settle
from tests.ui.conftest import UiEnv
from ui.config import ui_config
from ui.devapi import DevApi
from ui.launch import start_ui

if TYPE_CHECKING:
    from playwright.sync_api import Page

playwright_errors = pytest.importorskip("playwright.sync_api")

pytestmark = needs_chromium
SEOUL = "Asia/Seoul"
LABEL = "Times in Asia/Seoul (UTC+09:00)"


@pytest.fixture(scope="module")
def seoul_stack(ui_env: UiEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    svc = build_services(ui_env.settings, dev_rate=RateLimiter(100_000))
    api = start(create_app(ui_env.settings, svc), ui_env.settings)
    ui = dataclasses.replace(ui_config(ui_env.settings), port=free_port(),
                             base_url_path="streamlit", api_url=api.url, timezone=SEOUL)
    log = (tmp_path_factory.mktemp("ui-log") / "streamlit.log").open("wb")
    child = start_ui(ui_env.settings, ui, output=log)
    try:
        child.wait_ready()
        yield Stack(child.url, api.url, ui_env, child.proc.pid)
    finally:
        child.stop()
        log.close()
        api.stop()
        svc.close()


@pytest.fixture
def page(tmp_path: Path, seoul_stack: Stack) -> Iterator[Page]:
    with open_browser(tmp_path / "chromium-profile", seoul_stack) as ctx:
        yield ctx.pages[0] if ctx.pages else ctx.new_page()


def seoul(value: datetime) -> str:
    return value.astimezone(ZoneInfo(SEOUL)).strftime("%Y-%m-%d %H:%M")


def grid_headers(page: Page, index: int = 0) -> list[str]:
    grid = page.get_by_test_id("stDataFrame").nth(index)
    return [t.strip() for t in grid.locator("[role='columnheader']").all_inner_texts()]


def grid_cells(page: Page, header: str, index: int = 0, *, selectable: bool = False
               ) -> list[str]:
    """The texts of a grid column's (drawn) cells, as the grid's accessible table has them;
    a selectable grid's column 0 is its row markers."""
    column = grid_headers(page, index).index(header) + (1 if selectable else 0)
    grid = page.get_by_test_id("stDataFrame").nth(index)
    return grid.locator(f"[data-testid^='glide-cell-{column}-']").all_inner_texts()


def test_home_labels_its_zone_and_draws_todays_bar(seoul_stack: Stack, page: Page, shots: Path):
    page.goto(seoul_stack.ui_url)
    page.get_by_test_id("stMetric").first.wait_for()
    settle(page)
    assert page.get_by_text(LABEL).count() == 1
    engine = Engine(seoul_stack.env.settings)
    run = engine.query(QuerySpec(table="runs", limit=1)).rows.to_pylist()[0]
    engine.close()
    assert page.get_by_text(f"at {seoul(run['finished_at'])}").count() == 1
    chart = page.get_by_test_id("stVegaLiteChart").first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box and box["x"] + box["width"] <= page.viewport_size["width"]  # type: ignore[index]
    # today's bar is the last band of an ordinal axis: its label is drawn inside the chart
    page.screenshot(path=str(shots / "seoul-home.png"), full_page=True)


def test_feature_grid_has_value_and_fits_its_rows(seoul_stack: Stack, page: Page, shots: Path):
    page.goto(seoul_stack.ui_url + "feature?feature_group=volte&feature_name=Feature+01")
    page.get_by_test_id("stDataFrame").first.wait_for()
    settle(page)
    headers = grid_headers(page)
    assert headers[:4] == ["operator", "country", "MCC-MNC", "value"], headers
    operators = [c for c in grid_cells(page, "operator") if c]
    assert operators == sorted(operators, key=str.casefold)
    rows = len(operators)
    box = page.get_by_test_id("stDataFrame").first.bounding_box()
    assert box and abs(box["height"] - (40 + 35 * rows)) <= 4, (box, rows)  # every row shown
    page.screenshot(path=str(shots / "seoul-feature.png"), full_page=True)


def test_history_shows_before_after_in_the_list_and_jumps_to_a_day(seoul_stack: Stack,
                                                                    page: Page, shots: Path):
    page.goto(seoul_stack.ui_url + f"history?run={seoul_stack.env.runs[1]}")
    page.get_by_test_id("stDataFrame").first.wait_for()
    settle(page)
    headers = grid_headers(page)
    assert "changed at (UTC+09:00)" in headers and "before → after" in headers, headers
    assert page.get_by_text(re.compile(re.escape(LABEL))).count() >= 1
    cells = grid_cells(page, "before → after", selectable=True)
    assert "status: enabled → disabled" in cells and "value: 0 → 9" in cells, cells
    engine = Engine(seoul_stack.env.settings)
    newest = engine.query(QuerySpec(table="changes", order=("-changed_at", "-id"),
                                    filters=(("run_id", str(seoul_stack.env.runs[1])),),
                                    limit=1)).rows.to_pylist()[0]
    engine.close()
    shown = grid_cells(page, "changed at (UTC+09:00)", selectable=True)[0]
    assert shown.startswith(seoul(newest["changed_at"])) and shown.endswith("+09:00"), shown
    # the before/after detail shows empty values as empty, never "None"
    detail = page.get_by_test_id("stDataFrame").nth(1)
    assert "None" not in detail.locator("[data-testid^='glide-cell-']").all_inner_texts()
    day = seoul(newest["changed_at"])[:10]
    page.get_by_role("spinbutton", name="year, Jump to day").click()
    page.keyboard.type(day.replace("-", ""))  # yyyy, mm, dd: each segment moves on when full
    page.keyboard.press("Escape")
    page.get_by_role("heading", name="History").click()  # leaving the field commits it
    page.get_by_text(re.compile(f"{day}: the newest change on or before it")).wait_for()
    settle(page)
    page.screenshot(path=str(shots / "seoul-history.png"), full_page=True)


def test_the_first_allow_list_entry_is_added_in_the_dev_editor(seoul_stack: Stack, page: Page,
                                                               shots: Path):
    api = DevApi(seoul_stack.api_url, seoul_stack.env.key)
    api.put_allow_list([])
    page.goto(seoul_stack.ui_url + "dev")
    page.get_by_label("Admin API key").fill(seoul_stack.env.key)
    page.get_by_role("button", name="Unlock").click()
    page.get_by_role("tab", name="Allow list").click()
    page.get_by_text("allow list is empty").wait_for()
    settle(page)
    editor = page.get_by_test_id("stDataFrame").last
    assert grid_headers(page, -1)[:3] == ["CIDR", "Role", "Note"]
    editor.hover()
    page.get_by_role("button", name="Add row").click()
    settle(page)
    page.keyboard.press("Escape")
    canvas = editor.get_by_test_id("data-grid-canvas")
    cell = page.locator("textarea").first
    for _ in range(3):  # a busy machine may redraw the grid under the first click
        box = canvas.bounding_box()
        assert box
        # the new row's CIDR cell: the grid is a canvas, so its cells are reached by position
        page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + 35 + 17)
        page.keyboard.press("Enter")  # opens the cell's editor
        try:
            cell.wait_for(timeout=5_000)
            break
        except playwright_errors.TimeoutError:
            page.keyboard.press("Escape")
            settle(page)
    cell.fill("10.30.0.0/16")
    cell.press("Enter")
    settle(page)
    page.screenshot(path=str(shots / "seoul-dev-allow-added.png"), full_page=True)
    page.get_by_role("button", name="Save allow list").click()
    page.get_by_text("Saved: 1 entries").wait_for()
    try:
        assert [(e["cidr"], e["role"]) for e in api.allow_list()["entries"]] == [
            ("10.30.0.0/16", "user")]
    finally:
        api.put_allow_list([])
    page.get_by_role("tab", name="Runs").click()
    settle(page)
    assert page.get_by_text(LABEL).count() >= 1
    assert "started_at (UTC+09:00)" in grid_headers(page, 0)
    page.screenshot(path=str(shots / "seoul-dev-runs.png"), full_page=True)
