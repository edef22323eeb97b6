"""The page list, the navigation and the page-view count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from ui import access, dev, feature, history, home, overview, sql, tokens
from ui.access import OPEN, Viewer
from ui.context import client_address, config, recorder

VIEWED = "_fmw_viewed_page"


@dataclass(frozen=True)
class PageDef:
    name: str  # also the URL path ("" for Home)
    title: str
    render: Callable[[], None]


#: No page icons: Streamlit makes a page's icon its favicon, which for a :material/...: icon
#: the browser fetches from fonts.gstatic.com - and the explorer must not reach outside.
PAGES: tuple[PageDef, ...] = (
    PageDef("", "Home", home.page),
    PageDef("overview", "Overview", overview.page),
    PageDef("feature", "Feature", feature.page),
    PageDef("history", "History", history.page),
    PageDef("sql", "SQL", sql.page),
    PageDef("dev", "Dev", dev.page),
    PageDef("tokens", "API tokens", tokens.page),
)
#: Who a page is for, in its refusal ("This page is for admins only").
NEEDED = {"dev": "admins", "tokens": "signed-in users"}


def _refusal(page: PageDef) -> Callable[[], None]:
    def refused() -> None:
        access.refused(page.title, NEEDED.get(page.name, "admins"))
    return refused


def plan_pages(viewer: Viewer, oidc: bool) -> list[tuple[PageDef, bool]]:
    """Each page and whether it is in the navigation. A page the viewer may not open stays
    reachable by URL but shows only a refusal (`access.refused`); the API tokens page exists
    only with sign-on."""
    out = []
    for p in PAGES:
        if p.name in access.SIGNED_IN_PAGES and not oidc:
            continue
        out.append((p, viewer.may_open(p.name)))
    return out


def record_view(name: str) -> None:
    """Count a view when a session opens a page (not on every rerun of the same page)."""
    if st.session_state.get(VIEWED) == name:
        return
    st.session_state[VIEWED] = name
    try:
        settings, ui = config()
        recorder(settings, ui).record(client_address(), name or "home")
    except Exception:  # noqa: BLE001, S110 - counting must never break a page
        pass


def run(viewer: Viewer = OPEN, *, oidc: bool = False) -> None:
    nav = st.navigation(
        [st.Page(p.render if allowed else _refusal(p), title=p.title,
                 url_path=p.name or "home", default=(p.name == ""),
                 visibility="visible" if allowed else "hidden")
         for p, allowed in plan_pages(viewer, oidc)],
        position="top",
    )
    record_view(nav.url_path or "")
    nav.run()
