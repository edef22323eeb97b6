"""Overview filters changed one after another in a real browser, in many orders.

Regression for issue 12's blocker: the filter widgets' values were their displayed labels, which
carry live facet counts (``volte · 28``); when a count changed, the old label came back as the
value ("unknown feature group 'volte · 18,930'", or 0 matches and ``status=enabled+·+1\\,187`` in
the URL). After every step - choosing and removing values, MCC/MNC, search, Clear filters, back,
forward, a shared link opened in a new session - the count shown must equal the v1 API's
``X-Total-Count`` for the same filters, the URL must hold only those values, and the widgets must
show them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ui.browser import Stack, api_total, needs_chromium, open_browser, settle, url_query
from ui.viewstate import FACET_FIELDS, escape

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = needs_chromium

LABELS = {"status": "Status", "region": "Region", "country": "Country", "operator": "Operator"}
HELENA = "Saint Helena, Ascension and Tristan da Cunha"  # a comma inside a value


@dataclass(frozen=True)
class Filters:
    """What the test asked for: the model every step is checked against."""

    group: str | None = None
    chosen: tuple[tuple[str, tuple[str, ...]], ...] = ()
    mcc: str = ""
    mnc: str = ""
    q: str = ""

    def values(self, name: str) -> tuple[str, ...]:
        return dict(self.chosen).get(name, ())

    def with_values(self, name: str, values: tuple[str, ...]) -> Filters:
        rest = {**dict(self.chosen), name: values}
        return replace(self, chosen=tuple((n, rest[n]) for n in FACET_FIELDS if rest.get(n)))

    def pairs(self) -> list[tuple[str, str]]:
        out = [(n, escape(v)) for n, vs in self.chosen for v in vs]
        out += [(n, v) for n, v in (("mcc", self.mcc), ("mnc", self.mnc), ("q", self.q)) if v]
        return out

    def api_path(self) -> str:
        return "/api/v1/features" + (f"/{self.group}" if self.group else "")

    def url(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.group:
            out["feature_group"] = [self.group]
        for name, value in self.pairs():
            out.setdefault(name, []).append(value)
        return out


@dataclass
class Session:
    """The browser page and its history of filter states (as back/forward walk it)."""

    page: Page
    history: list[Filters] = field(default_factory=lambda: [Filters()])
    at: int = 0

    @property
    def now(self) -> Filters:
        return self.history[self.at]

    def push(self, state: Filters) -> None:
        self.history = [*self.history[:self.at + 1], state]
        self.at += 1


def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def multiselect(page: Page, name: str) -> Locator:
    return sidebar(page).get_by_test_id("stMultiSelect").filter(
        has=page.get_by_role("combobox", name=LABELS[name], exact=True))


def pick(page: Page, widget: Locator, value: str) -> None:
    """Open `widget`'s dropdown and click the entry for `value` (its label: value · count)."""
    name = value if value == "(all groups)" else re.compile(rf"^{re.escape(value)} · [\d,]+$")
    entry = page.get_by_role("option", name=name)
    widget.get_by_role("button", name="Open").click()
    if not entry.is_visible():  # the first click only focused the widget
        page.wait_for_timeout(300)
        if not entry.is_visible():
            widget.get_by_role("button", name="Open").click()
    entry.click()


def shown(page: Page) -> dict[str, object]:
    """What the page shows: the match count (None without one), the errors and warnings, the
    widgets' values (labels without their counts)."""
    return dict(page.evaluate(r"""() => {
        const side = document.querySelector("[data-testid='stSidebar']");
        const strip = s => s.replace(/ · [\d,]+$/, "");
        const match = [...document.querySelectorAll("[data-testid='stMarkdownContainer']")]
            .map(e => e.innerText).find(t => /feature\(s\) match/.test(t));
        const widgets = {};
        for (const ms of side.querySelectorAll("[data-testid='stMultiSelect']")) {
            const label = ms.querySelector("input[role='combobox']").getAttribute("aria-label");
            widgets[label] = [...ms.querySelectorAll(".react-aria-ComboBox [data-tag]")]
                .map(t => strip(t.getAttribute("aria-label")));
        }
        const group = side.querySelector("input[aria-label='Feature group']").value;
        return {count: match ? parseInt(match.split(" ")[0].replace(/,/g, "")) : null,
                groupLabel: group, group: strip(group),
                widgets, errors: [...document.querySelectorAll(
                    "[data-testid='stAlertContainer'][role='alert'], [data-testid='stException']")]
                    .map(e => e.innerText)};
    }"""))


def expected_view(stack: Stack, f: Filters) -> dict[str, object]:
    return {"count": api_total(stack, f.api_path(), f.pairs()), "group": f.group or "(all groups)",
            "widgets": {LABELS[n]: list(f.values(n)) for n in FACET_FIELDS}, "errors": [],
            "url": f.url()}


def check(stack: Stack, s: Session, step: str, timeout: float = 15) -> None:
    """Wait until the page shows the model's view, then check it stays there."""
    want = expected_view(stack, s.now)
    deadline = time.monotonic() + timeout
    got: dict[str, object] = {}
    while True:
        settle(s.page)
        got = {**shown(s.page), "url": url_query(s.page)}
        label = str(got.pop("groupLabel"))
        if all(got.get(k) == v for k, v in want.items()):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"after {step}: the page shows\n  {got}\nthe API and the filters say\n"
                        f"  {want}")
        s.page.wait_for_timeout(300)
    if s.now.group:  # the group's count is the API's for the other filters in that group
        assert label == f"{s.now.group} · {want['count']:,}", (step, label)


def act(stack: Stack, s: Session, step: tuple[str, ...]) -> None:
    """Do one step as a person would, and update the model."""
    page, f = s.page, s.now
    kind, *args = step
    side = sidebar(page)
    if kind == "group":
        pick(page, side.get_by_test_id("stSelectbox"), "(all groups)" if args[0] == "all"
             else args[0])
        s.push(replace(f, group=None if args[0] == "all" else args[0]))
    elif kind == "add":
        name, value = args
        pick(page, multiselect(page, name), value)
        page.keyboard.press("Escape")
        s.push(f.with_values(name, (*f.values(name), value)))
    elif kind == "remove":
        name, value = args
        multiselect(page, name).get_by_role(
            "button", name=re.compile(rf"^Remove {re.escape(value)} · ")).click()
        s.push(f.with_values(name, tuple(v for v in f.values(name) if v != value)))
    elif kind in ("mcc", "mnc", "q"):
        box = side.get_by_role("textbox", name={"mcc": "MCC", "mnc": "MNC", "q": "Search"}[kind])
        box.fill(args[0])
        box.press("Enter")
        s.push(replace(f, mcc=args[0]) if kind == "mcc" else replace(f, mnc=args[0])
               if kind == "mnc" else replace(f, q=args[0]))
    elif kind == "clear":
        side.get_by_role("button", name="Clear filters").click()
        s.push(Filters())
    elif kind == "back":
        page.go_back()
        s.at -= 1
    elif kind == "forward":
        page.go_forward()
        s.at += 1
    else:
        raise AssertionError(kind)


SCENARIOS = {
    # the two orders of the issue, then others; each step checked against the API
    "group-country-status": [
        ("group", "volte"), ("add", "country", "Germany"), ("add", "status", "enabled"),
        ("add", "status", "disabled"), ("add", "operator", "Telekom Deutschland GmbH"),
        ("back",), ("back",), ("forward",), ("remove", "country", "Germany"),
        ("add", "region", "Asia"), ("reopen",), ("add", "country", "South Korea"),
        ("group", "all"), ("clear",), ("back",)],
    "status-country-region": [
        ("add", "status", "enabled"), ("add", "country", "South Korea"),
        ("add", "region", "Asia"), ("add", "operator", "KT"), ("mnc", "08"),
        ("remove", "status", "enabled"), ("mcc", "450"), ("q", "Feature 01"), ("reopen",),
        ("group", "rcs"), ("mnc", ""), ("back",), ("clear",)],
    "region-operator-group-text": [
        ("add", "region", "Europe"), ("add", "region", "Africa"),
        ("add", "operator", "Sure South Atlantic Ltd."), ("group", "vonr"), ("mcc", "658"),
        ("add", "country", HELENA), ("q", "feature"), ("back",), ("back",), ("forward",),
        ("reopen",), ("remove", "region", "Europe"), ("group", "volte"), ("clear",),
        ("add", "operator", "AT&T Mobility"), ("add", "status", "testing"),
        ("group", "rcs"), ("reopen",), ("group", "all")],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_filters_changed_in_any_order_show_the_api_count(stack: Stack, tmp_path: Path,
                                                         shots: Path, name: str):
    with open_browser(tmp_path / "profile", stack) as ctx:
        s = Session(ctx.new_page())
        s.page.goto(stack.ui_url + "overview")
        check(stack, s, "opening the Overview")
        for i, step in enumerate(SCENARIOS[name]):
            try:
                if step == ("reopen",):  # the link pasted into a new tab: a new session
                    url, state = s.page.url, s.now
                    s = Session(ctx.new_page(), [state])
                    s.page.goto(url)
                else:
                    act(stack, s, step)
                check(stack, s, f"step {i + 1} {step}")
            except BaseException:
                s.page.screenshot(path=str(shots / f"overview-filters-{name}-failed.png"))
                raise
        s.page.screenshot(path=str(shots / f"overview-filters-{name}.png"))
