"""Overview: every feature, filtered, one server-side page at a time, exportable as shown.

The filters live in the URL (a shareable link), in the v1 API's parameter names; the table
reads one page (`limit`/`offset`) from the snapshot, so a million rows cost one page. Sorting is
the server's too: a click on a column header picks that column in the sort box (a second click
reverses it), and the whole result is ordered, not only the page shown.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from query import QuerySpec
from query.encoders import XLSX_MAX_ROWS
from ui import cache, downloads, reads, timefmt
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
from ui.usage import LedgerIO
from ui.viewstate import ViewState, parse_params, query_string, validate
from ui.widgets import (
    api_origin,
    arrow_for_display,
    current_version,
    header,
    set_url_params,
    show_error,
    table_height,
    url_params,
)

LAST_URL = "_ov_url"
URL_ERRORS = "_ov_url_errors"
TABLE_HEIGHT = 420
#: Bumped after a header click, so the grid comes back without the column selected.
GRID = "_ov_grid"
WRAP = "ov_wrap"
WRAPPED_ROW_PX = 72  # Streamlit wraps a grid's text in rows taller than 4rem
#: The grid's own sorting (its column menu) and CSV download see only the rows on the page:
#: hidden here, where a header click sorts on the server and the exports hold every row.
_MENU = "[data-testid='stDataFrameColumnMenu'] [role='menu'] > div:first-child"
PAGE_ONLY_TOOLS = f"""<style>
{_MENU} + [role='menuitem'], {_MENU} + [role='menuitem'] + [role='menuitem'],
{_MENU} + [role='menuitem'] + [role='menuitem'] + div,
[data-testid='stElementToolbar'] [data-testid='stElementToolbarButton']:has(
  button[aria-label='Download as CSV']) {{display: none;}}
</style>"""
#: Larger views are offered as CSV only: a sheet holds at most XLSX_MAX_ROWS - 1 rows.
XLSX_ROWS = XLSX_MAX_ROWS - 1


def _step(delta: int) -> None:
    st.session_state[key("page")] = max(1, int(st.session_state.get(key("page"), 1)) + delta)


def _exporter(c: Ctx, version: int, spec: QuerySpec, fmt: str, name: str) -> str:
    """A link that downloads every row of `spec` as `fmt`: the explorer's own route
    (`ui.server`) streams the query layer's chunks when it is followed, so the process
    holds one chunk, not the file (Streamlit's download_button keeps a whole copy in
    memory). The token is issued to this page and this browser only (`ui.downloads`), and
    carries the viewer's row scope from here: the route never takes a scope from a request.
    It names the viewer too: a scoped user's download is audited with them (`ui.server`)."""
    run = get_script_run_ctx()
    cookies = dict(st.context.cookies or {})
    token = downloads.TICKETS.issue(
        c.engine, version, c.scoped(spec), fmt, tz=c.ui.timezone, name=name,
        session=run.session_id if run is not None else "",
        browser=downloads.browser_id(cookies.get(downloads.BROWSER_COOKIE)),
        subject=c.viewer.subject or None, user_name=c.viewer.name or None,
        ledger=LedgerIO(c.settings))
    return downloads.link(c.ui.base_url_path, token)


def _sync_url(c: Ctx, available: tuple[str, ...]) -> None:
    """Seed the widgets from the URL when it changed outside the app (a shared link, back)."""
    url = url_params()
    if st.session_state.get(LAST_URL) != url:
        state, errors = parse_params(url, default_size=c.ui.page_size)
        seed_from(state, available)
        st.session_state[URL_ERRORS] = errors


def _order_label(column: str) -> str:
    return "Default order" if column == DEFAULT_ORDER else f"Sort by {header(column)}"


def _controls(available: tuple[str, ...], columns: list[str], bar: Any) -> None:
    # a popover's widgets are drawn in the browser only when it opens, from this run's
    # message: give them their values in it, or they open empty
    st.session_state[key("columns")] = columns
    st.session_state[WRAP] = bool(st.session_state.get(WRAP))
    with bar.popover("Columns", icon=":material/view_column:", width="content"):
        st.multiselect("Columns shown and exported", list(available), key=key("columns"),
                       format_func=lambda col: f"{header(col)} ({col})")
        st.button("Default columns", on_click=lambda: st.session_state.update(
            {key("columns"): default_columns(available)}))
        st.toggle("Wrap long text", key=WRAP, help="Taller rows that show long names and "
                  "notes in full")
    bar.selectbox("Sort by", [DEFAULT_ORDER, *available], key=key("order"),
                  on_change=reset_page, label_visibility="collapsed", width=190,
                  format_func=_order_label,
                  help="Sorts every matching row on the server. Clicking a column header "
                       "does the same; click it again to reverse.")
    bar.toggle("Descending", key=key("desc"), on_change=reset_page, width="content")


def _grid_key() -> str:
    return f"ov_table_{st.session_state.get(GRID, 0)}"


def _header_clicked() -> None:
    """A column header was clicked (the grid selects the column): sort by it on the server,
    the other way round when it is already the sort column."""
    picked = st.session_state.get(_grid_key()) or {}
    columns = list((picked.get("selection") or {}).get("columns") or [])
    if columns:
        if st.session_state.get(key("order")) == columns[0]:
            st.session_state[key("desc")] = not st.session_state.get(key("desc"), False)
        else:
            st.session_state[key("order")] = columns[0]
            st.session_state[key("desc")] = False
        reset_page()
    st.session_state[GRID] = int(st.session_state.get(GRID, 0)) + 1


def _column_config(c: Ctx, state: ViewState, rows: Any) -> dict[str, Any]:
    """Human titles (the sort column with its arrow), times in the configured zone."""
    first = state.order.split(",")[0] if state.order else ""
    by, arrow = first.lstrip("+-"), " ↓" if first.startswith("-") else " ↑"
    titles = {n: header(n) + (arrow if n == by else "") for n in rows.column_names}
    config: dict[str, Any] = {
        n: st.column_config.Column(title, help=f"`{n}` · click to sort every matching row")
        for n, title in titles.items()}
    config.update(timefmt.column_config(rows, c.ui.timezone, labels=titles))
    return config


def _pager(state: ViewState, total: int) -> None:
    pages = max(1, math.ceil(total / state.size))
    bar = st.container(horizontal=True, vertical_alignment="center", gap="small")
    bar.button("◀ Prev", on_click=_step, args=(-1,), disabled=state.page <= 1,
               width="content", key="ov_prev")
    bar.button("Next ▶", on_click=_step, args=(1,), disabled=state.page >= pages,
               width="content", key="ov_next")
    bar.number_input("Page", min_value=1, max_value=max(pages, state.page), step=1,
                     key=key("page"), label_visibility="collapsed", width=130)
    bar.selectbox("Rows per page", PAGE_SIZES if state.size in PAGE_SIZES
                  else sorted({*PAGE_SIZES, state.size}), key=key("size"),
                  on_change=reset_page, label_visibility="collapsed", width=150,
                  format_func=lambda n: f"{n} per page")
    first = (state.page - 1) * state.size + 1 if total else 0
    bar.caption(f"Rows {first:,}–{min(total, state.page * state.size):,} of {total:,} · "
                f"page {state.page:,} of {pages:,}", width="content")


def _exports(c: Ctx, version: int, state: ViewState, columns: list[str], total: int,
             slots: list[Any]) -> None:
    """XLSX first (it opens in Excel as the data is), then CSV; names say what is in them."""
    spec = state.spec(paged=False, columns=columns)
    filters = [(name, v) for name, values in state.choices for v in values]
    filters += [(name, raw.strip()) for name, raw in (("mcc", state.mcc), ("mnc", state.mnc),
                                                      ("q", state.q)) if raw.strip()]
    filters += list(state.extra)

    def name(ext: str) -> str:
        return reads.export_name("features", version, ext, group=state.group, filters=filters)

    zone = c.ui.timezone
    too_big = total > XLSX_ROWS
    xlsx_help = (f"An Excel sheet holds at most {XLSX_ROWS:,} rows: filter further or take "
                 "the CSV" if too_big else f"All {total:,} matching rows, the columns shown, "
                 "for Excel: codes such as MNC 05 stay text, nothing is run as a formula, "
                 f"times in {zone}")
    xlsx = None if too_big else _exporter(c, version, spec, "xlsx", name("xlsx"))
    slots[0].html(downloads.button("XLSX", xlsx, name("xlsx"), xlsx_help, primary=True))
    slots[1].html(downloads.button(
        "CSV", _exporter(c, version, spec, "csv", name("csv")), name("csv"),
        f"All {total:,} matching rows, the columns shown, UTF-8 with BOM, times in {zone}. "
        "Excel opening a CSV turns codes into numbers (MNC 05 becomes 5): take the XLSX for "
        "Excel"))


def api_url(c: Ctx, state: ViewState, columns: list[str]) -> str:
    """The same rows from the v1 API, through the host (and path) the user came from."""
    qs = query_string(state.api_pairs(columns=columns))
    origin = api_origin(st.context.url, dict(st.context.headers or {}), c.ui.base_url_path,
                        c.ui.api_url)
    return f"{origin}{state.api_path()}{'?' + qs if qs else ''}"


def _api_link(c: Ctx, state: ViewState, columns: list[str]) -> None:
    url = api_url(c, state, columns)
    text = url.replace("[", "%5B").replace("]", "%5D").replace(" ", "%20")
    sign_on = (" With sign-on, send `Authorization: Bearer <token>`: a personal API token "
               "from the API tokens page." if c.settings.auth.oidc else "")
    st.caption(f"The same rows from the API (CSV; add `format=json` or `format=xlsx`): "
               f"[{text}]({text}){sign_on}")


def page() -> None:
    c = ctx()
    st.title("Overview")
    version = current_version(c)
    if version is None:
        return
    try:
        available = cache.columns(c, version)
        groups = cache.groups(c, version)
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
    st.html(PAGE_ONLY_TOOLS)
    # one row that wraps on narrow screens instead of squeezing its controls
    bar = st.container(horizontal=True, vertical_alignment="center", gap="small")
    bar.markdown(f"**{total:,}** feature(s) match · v{version:06d}"
                 if result is not None else "&nbsp;", width="content")
    bar.space("stretch")
    _controls(available, columns, bar)
    slots = [bar.container(width=100), bar.container(width=100)]
    for n in notices:
        st.warning(n, icon=":material/link_off:")
    for p in problems:
        st.error(p, icon=":material/filter_alt_off:")
    if result is None:
        return
    _exports(c, version, state, columns, total, slots)
    if total and state.page > math.ceil(total / state.size):
        st.session_state[key("page")] = 1
        st.rerun()
    if total == 0:
        st.info("No feature matches these filters. Remove a filter or press **Clear filters**.",
                icon=":material/search_off:")
    wrap = bool(st.session_state.get(WRAP))
    st.space("small")  # room for the grid's toolbar, which would cover the downloads
    st.dataframe(timefmt.to_zone(arrow_for_display(result.rows), c.ui.timezone),
                 hide_index=True, width="stretch", key=_grid_key(), placeholder="",
                 height=table_height(result.rows.num_rows, TABLE_HEIGHT * (2 if wrap else 1),
                                     row_px=WRAPPED_ROW_PX if wrap else 35),
                 row_height=WRAPPED_ROW_PX if wrap else None,
                 column_config=_column_config(c, state, result.rows),
                 on_select=_header_clicked, selection_mode="single-column")
    _pager(state, total)
    _api_link(c, state, columns)
