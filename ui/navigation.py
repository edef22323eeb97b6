"""The page list, the navigation and the page-view count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from ui import dev, feature, history, home, overview, sql
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
)


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


def run() -> None:
    nav = st.navigation(
        [st.Page(p.render, title=p.title, url_path=p.name or "home",
                 default=(p.name == "")) for p in PAGES],
        position="top",
    )
    record_view(nav.url_path or "")
    nav.run()
