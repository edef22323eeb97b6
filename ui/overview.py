"""Overview: every feature, filtered, one server-side page at a time, exportable as shown.

The filters live in the URL (a shareable link), in the v1 API's parameter names; the table
reads one page (`limit`/`offset`) from the snapshot, so a million rows cost one page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import streamlit as st

from query import Engine, QuerySpec
from query.encoders import XLSX_MAX_ROWS
from ui import cache, reads
from ui.config import PAGE_SIZES
from ui.context import Ctx, ctx
from ui.overview_filters import (
    DEFAULT_ORDER,
    default_columns,
    facet_specs,
    key,
    panel,
    reset_page,
    seed_from,
    state_from_widgets,
)
from ui.viewstate import ViewState, parse_params, query_string, validate
from ui.widgets import (
    arrow_for_display,
    current_version,
    set_url_params,
    show_error,
    table_height,
    url_params,
)

LAST_URL = "_ov_url"
URL_ERRORS = "_ov_url_errors"
TABLE_HEIGHT = 420
#: Larger views are offered as CSV only: a sheet holds at most XLSX_MAX_ROWS - 1 rows.
XLSX_ROWS = XLSX_MAX_ROWS - 1


def _step(delta: int) -> None:
    st.session_state[key("page")] = max(1, int(st.session_state.get(key("page"), 1)) + delta)


def _exporter(engine: Engine, version: int, spec: QuerySpec, fmt: str) -> Callable[[], bytes]:
    def make() -> bytes:
        return reads.export_bytes(engine, version, spec, fmt)
    return make


def _sync_url(c: Ctx, available: tuple[str, ...]) -> None:
    """Seed the widgets from the URL when it changed outside the app (a shared link, back)."""
    url = url_params()
    if st.session_state.get(LAST_URL) != url:
        state, errors = parse_params(url, default_size=c.ui.page_size)
        seed_from(state, available)
        st.session_state[URL_ERRORS] = errors


def _controls(available: tuple[str, ...], slots: list[Any]) -> None:
    with slots[0].popover("Columns", icon=":material/view_column:", width="stretch"):
        st.multiselect("Columns shown and exported", list(available), key=key("columns"))
        st.button("Default columns", on_click=lambda: st.session_state.update(
            {key("columns"): default_columns(available)}))
    slots[1].selectbox("Sort by", [DEFAULT_ORDER, *available], key=key("order"),
                       on_change=reset_page, label_visibility="collapsed")
    slots[2].toggle("Desc.", key=key("desc"), on_change=reset_page)


def _pager(state: ViewState, total: int) -> None:
    pages = max(1, math.ceil(total / state.size))
    a, b, c, d, e = st.columns([1, 1, 2, 2, 4], vertical_alignment="center")
    a.button("◀ Prev", on_click=_step, args=(-1,), disabled=state.page <= 1, width="stretch",
             key="ov_prev")
    b.button("Next ▶", on_click=_step, args=(1,), disabled=state.page >= pages, width="stretch",
             key="ov_next")
    c.number_input("Page", min_value=1, max_value=max(pages, state.page), step=1,
                   key=key("page"), label_visibility="collapsed")
    d.selectbox("Rows per page", PAGE_SIZES if state.size in PAGE_SIZES
                else sorted({*PAGE_SIZES, state.size}), key=key("size"),
                on_change=reset_page, label_visibility="collapsed",
                format_func=lambda n: f"{n} per page")
    first = (state.page - 1) * state.size + 1 if total else 0
    e.caption(f"Rows {first:,}–{min(total, state.page * state.size):,} of {total:,} · "
              f"page {state.page:,} of {pages:,}")


def _exports(c: Ctx, version: int, state: ViewState, columns: list[str], total: int,
             slots: list[Any]) -> None:
    spec = state.spec(paged=False, columns=columns)
    snap = f"v{version:06d}" + (f"-{state.group}" if state.group else "")
    slots[0].download_button("CSV", _exporter(c.engine, version, spec, "csv"),
                             file_name=f"features-{snap}.csv", mime="text/csv",
                             icon=":material/download:", on_click="ignore", key="ov_dl_csv",
                             help=f"All {total:,} matching rows, the columns shown, UTF-8 with "
                                  "BOM (opens in Excel)", width="stretch")
    too_big = total > XLSX_ROWS
    slots[1].download_button(
        "XLSX", _exporter(c.engine, version, spec, "xlsx"), file_name=f"features-{snap}.xlsx",
        icon=":material/download:", on_click="ignore", key="ov_dl_xlsx", disabled=too_big,
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        width="stretch", help=f"An Excel sheet holds at most {XLSX_ROWS:,} rows: filter "
        "further or take the CSV"
        if too_big else f"All {total:,} matching rows, the columns shown")


def _api_link(state: ViewState, columns: list[str]) -> None:
    qs = query_string(state.api_pairs(columns=columns))
    st.caption(f"The same rows from the API: `{state.api_path()}{'?' + qs if qs else ''}`")


def page() -> None:
    c = ctx()
    st.title("Overview")
    version = current_version(c)
    if version is None:
        return
    try:
        available = cache.columns(c, version)
        groups = c.engine.snapshot(version).groups()
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "The overview")
        return
    _sync_url(c, available)
    state, problems = state_from_widgets(available)
    notices = st.session_state.pop(URL_ERRORS, [])  # shown once, with the link that had them
    problems = [*problems, *validate(state)]
    columns = list(state.columns) or default_columns(available)
    unknown = [col for col in columns if col not in available]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}; valid: {', '.join(available)}")
        columns = [col for col in columns if col in available]
        st.session_state[key("columns")] = columns or default_columns(available)
    facets = None
    if not problems:
        try:
            facets = cache.facets(c, version, facet_specs(state, available))
        except Exception as exc:  # noqa: BLE001 - the table below reports the same problem
            problems.append(str(exc))
    panel(c, version, state, groups, facets)
    set_url_params(state.to_params(c.ui.page_size))
    st.session_state[LAST_URL] = url_params()
    result = None
    if not problems:
        try:
            result = cache.page(c, version, state.spec(columns=columns))
        except Exception as exc:  # noqa: BLE001
            problems.append(str(exc))
    total = int(result.total or 0) if result is not None else 0
    head = st.columns([3, 1.3, 2.2, 0.9, 1, 1], vertical_alignment="center")
    head[0].markdown(f"**{total:,}** feature(s) match · v{version:06d}"
                     if result is not None else "&nbsp;")
    _controls(available, head[1:4])
    for n in notices:
        st.warning(n, icon=":material/link_off:")
    for p in problems:
        st.error(p, icon=":material/filter_alt_off:")
    if result is None:
        return
    _exports(c, version, state, columns, total, head[4:6])
    if total and state.page > math.ceil(total / state.size):
        st.session_state[key("page")] = 1
        st.rerun()
    if total == 0:
        st.info("No feature matches these filters. Remove a filter or press **Clear filters**.",
                icon=":material/search_off:")
    st.dataframe(arrow_for_display(result.rows), hide_index=True, width="stretch",
                 height=table_height(result.rows.num_rows, TABLE_HEIGHT), key="ov_table",
                 column_config={"last_changed_at": st.column_config.DatetimeColumn(
                     format="YYYY-MM-DD HH:mm"), "first_seen_at": st.column_config.DatetimeColumn(
                     format="YYYY-MM-DD HH:mm")})
    _pager(state, total)
    _api_link(state, columns)
