"""SQL (analysts): one read-only DuckDB statement over the current snapshot's views, with a row
limit, a size limit and a time limit; the result downloadable.

The query layer runs it: it accepts only a single SELECT-like statement, its DuckDB cannot read
files outside the snapshots folder nor change its configuration, and a timer interrupts it at
the time limit. This page never builds SQL itself.

The query that ran is in the URL (``?sql=...&limit=...``), like every page's state: a shared
link, or back and forward, opens the page with that query run.
"""

from __future__ import annotations

import pyarrow as pa
import streamlit as st

from query.encoders import encode
from query.fields import JSON_COLUMNS
from query.scope import SCOPED_TABLES
from ui import access, cache
from ui.context import Ctx, ctx
from ui.widgets import (
    arrow_for_display,
    current_version,
    set_url_params,
    show_error,
    table_height,
)

EXAMPLE = ("SELECT feature_group, status, count(*) AS n\nFROM features\nGROUP BY ALL\n"
           "ORDER BY n DESC")
RESULT = "sql_result"
TEXT, LIMIT = "sql_text", "sql_limit"
#: The query the URL held when this session last looked (a change means a link or back).
URL_SEEN = "_sql_url"
#: The URL parameters of the query shown (put back when the page is opened from the menu).
URL_SHOWN = "_sql_url_params"


def encoded(table: pa.Table, fmt: str) -> bytes:
    """The result table as a download, for Excel: CSV with a BOM and formula-like text
    neutralised (see `ui.reads.export_bytes`); XLSX text is stored as text, never formulas."""
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    return b"".join(encode(reader, fmt, bom=(fmt == "csv"), neutralise=(fmt == "csv"),
                           json_columns=JSON_COLUMNS))


def size_text(n: int) -> str:
    """67108864 -> "64 MB" (binary megabytes, as the setting is usually a power of two)."""
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


def tables(c: Ctx, version: int) -> list[str]:
    """The snapshot's tables (each is a view of the same name); for a scoped user only the
    views restricted to the scope (`query.scope.SCOPED_TABLES`)."""
    names = list(c.engine.snapshot(version).manifest.tables)
    return names if c.scope is None else [n for n in names if n in SCOPED_TABLES]


def _schema_help(c: Ctx, version: int) -> None:
    with st.expander("Tables and columns", icon=":material/schema:"):
        cols = st.columns(3)
        for i, table in enumerate(tables(c, version)):
            names = cache.columns(c, version, table)
            cols[i % 3].markdown(f"**{table}**  \n" + ", ".join(f"`{n}`" for n in names))


def run(c: Ctx, text: str, limit: int, timeout_s: float) -> None:
    try:
        result = c.engine.sql(text, limit=limit, timeout_s=timeout_s,
                              max_bytes=c.ui.sql_max_bytes, scope=c.scope)
    except Exception as exc:  # noqa: BLE001 - SqlRejected, QueryTimeout, ... as a sentence
        st.session_state.pop(RESULT, None)
        show_error(exc, "The query", "was not run")
        return
    st.session_state[RESULT] = result


def from_url(max_rows: int) -> bool:
    """Fill the form from the URL; True when its query should run now.

    A query this session has not shown (a shared link, back, forward) is put in the form and
    run. Opened from the menu (no query in the URL), the page keeps the query and result it
    showed, puts them back in the URL, and refills the form (its widgets forgot while away).
    """
    text, raw = st.query_params.get("sql"), st.query_params.get("limit", "")
    shown = st.session_state.get(URL_SHOWN)
    run_now = bool(text) and text != st.session_state.get(URL_SEEN)
    if run_now:
        st.session_state[URL_SEEN] = text
    elif not text and shown:
        set_url_params(shown)
        text, raw = shown["sql"][0], (shown["limit"] or [""])[0]
    else:
        return False
    st.session_state[TEXT] = text
    if raw.isdigit() and int(raw) >= 1:
        st.session_state[LIMIT] = min(int(raw), max_rows)
    return run_now


def to_url(text: str, limit: int, default_limit: int) -> None:
    """The query that ran, in the URL (the limit only when it is not the default)."""
    params = {"sql": [text], "limit": [str(limit)] if limit != default_limit else []}
    set_url_params(params)
    st.session_state[URL_SEEN] = text
    st.session_state[URL_SHOWN] = params


def page() -> None:
    c = ctx()
    if not c.viewer.may_open("sql"):  # the navigation hides it; a direct URL ends here
        access.refused("SQL", "signed-in users")
        return
    st.title("SQL")
    version = current_version(c)
    if version is None:
        return
    kinds = ("one SELECT (or WITH)" if c.scope is not None
             else "one SELECT (or WITH, DESCRIBE, SHOW, SUMMARIZE)")
    st.caption(f"Read-only DuckDB SQL over snapshot v{version:06d}: {kinds}; tables: "
               + ", ".join(tables(c, version))
               + (" (only the rows you may see)" if c.scope is not None else "")
               + f"; at most {size_text(c.ui.sql_max_bytes)} of results.")
    _schema_help(c, version)
    max_rows, max_time = c.ui.sql_max_rows, c.ui.sql_timeout_s
    default_limit = min(1000, max_rows)
    st.session_state.setdefault(TEXT, EXAMPLE)
    st.session_state.setdefault(LIMIT, default_limit)
    linked = from_url(max_rows)
    with st.form("sql_form", border=False):
        text = st.text_area("Query", height=160, key=TEXT)
        a, b, go = st.columns([2, 2, 1], vertical_alignment="bottom")
        limit = a.number_input("Row limit", min_value=1, max_value=max_rows, step=100,
                               key=LIMIT)
        timeout = b.number_input("Time limit (s)", min_value=0.5, max_value=max_time,
                                 value=max_time, step=1.0, key="sql_timeout")
        submitted = go.form_submit_button("Run", type="primary", icon=":material/play_arrow:",
                                          width="stretch")
    if submitted or linked:
        run(c, text, int(limit), float(timeout))
        to_url(text, int(limit), default_limit)
    result = st.session_state.get(RESULT)
    if result is None:
        return
    note = f"{result.rows.num_rows:,} row(s) in {result.elapsed_s * 1000:.0f} ms · " \
           f"snapshot v{result.version:06d}"
    if result.truncated:
        note += f" · stopped at the row limit ({result.rows.num_rows:,}); more rows exist"
    if result.over_bytes:
        note += f" · stopped at the size limit ({size_text(c.ui.sql_max_bytes)}); " + (
            "more rows exist" if result.rows.num_rows else "the first row alone is larger")
    st.caption(note)
    st.dataframe(arrow_for_display(result.rows), hide_index=True, width="stretch",
                 height=table_height(result.rows.num_rows, 360))
    cols = st.columns([1, 1, 1, 5])
    for col, fmt, mime in ((cols[0], "csv", "text/csv"), (cols[1], "xlsx", None),
                           (cols[2], "parquet", "application/vnd.apache.parquet")):
        table = result.rows

        def make(t: pa.Table = table, f: str = fmt) -> bytes:
            return encoded(t, f)

        col.download_button(fmt.upper(), make, file_name=f"query-v{result.version:06d}.{fmt}",
                            mime=mime, on_click="ignore", icon=":material/download:",
                            key=f"sql_dl_{fmt}", width="stretch")
