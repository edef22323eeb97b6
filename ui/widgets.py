"""Small pieces every page uses: the snapshot gate (empty and error states), error messages,
query-parameter helpers and number formatting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import streamlit as st

from fmw.errors import FmwError
from query import CorruptSnapshot, NoSnapshot
from ui.context import Ctx

FIRST_SYNC = """
No snapshot has been published yet, so there is nothing to show.

To publish the first one:

1. configure your sources in `fmw.toml` (or try the sample data: `fmw demo`);
2. run a sync, which publishes a snapshot when it applies: `fmw sync`, or **Run sync now** on
   the **Dev** page (admins), or wait for the scheduler;
3. reload this page.
"""


def current_version(c: Ctx) -> int | None:
    """The current snapshot version, or None after rendering why there is none."""
    try:
        snap = c.engine.snapshot()
    except NoSnapshot as exc:
        st.info(FIRST_SYNC, icon=":material/inventory_2:")
        if exc.problems and exc.problems != ("CURRENT.json is missing",):
            st.caption("Details: " + "; ".join(exc.problems))
        return None
    except CorruptSnapshot as exc:
        st.error(f"The snapshot cannot be read: {exc}")
        return None
    if snap.fallback is not None:
        st.warning(snap.fallback.message, icon=":material/warning:")
    return snap.version


def show_error(exc: BaseException, what: str = "This view", verb: str = "cannot be shown"
               ) -> None:
    """An FMW error as a sentence; anything else as a short failure notice."""
    if isinstance(exc, FmwError):
        st.error(f"{what} {verb}: {exc}", icon=":material/error:")
    else:
        st.error(f"{what} failed unexpectedly ({type(exc).__name__}: {exc}). "
                 "Please report this.", icon=":material/bug_report:")


def url_params() -> dict[str, list[str]]:
    """Every URL query parameter with all its values."""
    return {k: [str(v) for v in st.query_params.get_all(k)] for k in st.query_params.keys()}


def set_url_params(params: Mapping[str, Sequence[str]], *, keep: Sequence[str] = ()) -> None:
    """Make the URL's query exactly `params` (plus the `keep` keys already there)."""
    current = url_params()
    wanted = {k: list(v) for k, v in params.items() if v}
    for k in keep:
        if k in current and k not in wanted:
            wanted[k] = current[k]
    if wanted != current:
        st.query_params.from_dict({k: (v if len(v) > 1 else v[0]) for k, v in wanted.items()})


#: Column titles for people (a column not listed: its name with spaces, capitalised).
HEADERS: dict[str, str] = {
    "identity_hash": "Identity hash", "row_hash": "Row hash", "feature_group": "Group",
    "feature_name": "Feature", "mcc": "MCC", "mnc": "MNC", "status": "Status", "value": "Value",
    "owner": "Owner", "notes": "Notes", "source": "Source",
    "source_updated_at": "Source updated", "region": "Region", "country": "Country",
    "country_code": "Country code", "operator": "Operator", "brand": "Brand",
    "attrs": "Attributes", "first_run_id": "First run", "first_seen_at": "First seen",
    "last_run_id": "Last run", "last_changed_at": "Last changed",
}


def header(column: str) -> str:
    """``last_changed_at`` -> ``Last changed``."""
    return HEADERS.get(column) or column.replace("_", " ").capitalize()


def api_origin(browser_url: str | None, headers: Mapping[str, str] | None,
               base_url_path: str, api_url: str) -> str:
    """Where the user's browser reaches the v1 API (scheme, host and path prefix, no slash).

    Behind Nginx (a forwarded request) the API sits beside the explorer on the host and path
    the user came through: ``https://fmw.corp/streamlit/overview`` -> ``https://fmw.corp``
    (a prefix in front of the explorer's base path is kept). Reached directly, the explorer
    links to its configured `api_url`.
    """
    forwarded = any(k.lower() == "x-forwarded-for" for k in (headers or {}))
    if not browser_url or not forwarded:
        return api_url.rstrip("/")
    parts = urlsplit(browser_url)
    base = "/" + base_url_path.strip("/") + "/" if base_url_path.strip("/") else ""
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    prefix = path[:path.find(base)] if base and base in path else ""
    return f"{parts.scheme}://{parts.netloc}{prefix.rstrip('/')}"


def seed(key: str, value: Any) -> None:
    """Give a widget its starting value (before it is created)."""
    st.session_state[key] = value


def fmt_int(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def arrow_for_display(table: pa.Table) -> pa.Table:
    """Lists as text: the grid shows them fine, but exports and sorting are saner as text."""
    cols = []
    for col in table.columns:
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            col = pa.array([None if v is None else ", ".join(map(str, v))
                            for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def table_height(rows: int, max_px: int = 420, row_px: int = 35) -> int:
    """Pixels for a grid of `rows` rows of `row_px` (header included), at most `max_px`."""
    return min(40 + row_px * max(rows, 1), max_px)


def selected_row(picked: Any) -> int | None:
    """The index of the row selected in a single-row `st.dataframe`, if any."""
    rows = list(getattr(getattr(picked, "selection", None), "rows", None) or [])
    return int(rows[0]) if rows else None
