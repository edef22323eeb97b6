"""Feature: one feature across every operator as a status matrix, and one row's history as a
timeline of its changes (from the snapshot's change window)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from query import MAX_LIMIT, QuerySpec
from ui import cache, timefmt
from ui.context import Ctx, ctx
from ui.diffview import as_dict, side_by_side
from ui.viewstate import escape
from ui.widgets import current_version, set_url_params, show_error, table_height, url_params

ALL = "(all groups)"
MATRIX_COLUMNS = ("feature_group", "operator", "country", "mcc", "mnc", "status", "value",
                  "identity_hash", "last_changed_at")
STATUS_COLORS = {"enabled": "#c8ecd0", "supported": "#c8ecd0", "disabled": "#e6e6e6",
                 "not_supported": "#f6d0d0", "testing": "#fff0b3", "planned": "#d6e4ff"}
OPS = {"C": "Created", "U": "Updated", "D": "Deleted"}
UNKNOWN_OPERATOR = "(unknown operator)"
KEYS = ("feature_group", "operator", "country", "network", "value")
#: The grid grows with its rows up to about 20 of them; past that it scrolls inside.
GRID_MAX_PX = 640


def grid_height(rows: int) -> int:
    """The matrix's height: every row up to GRID_MAX_PX (a page's worth at 1366x768)."""
    return table_height(rows, GRID_MAX_PX)


def _values(values: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in values.dropna() if str(v) != ""}))


def _names(c: Ctx, version: int, group: str | None, search: str) -> list[tuple[str, int]]:
    filters = (("feature_name__icontains", search.strip()),) if search.strip() else ()
    spec = QuerySpec(feature_group=group, filters=filters)
    counts = cache.facets(c, version, [(spec, ["feature_name"])])
    return [(str(v), n) for v, n in counts.get("feature_name", []) if v is not None]


def matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """Operators (with country, MCC-MNC and the feature's value there) × status: the number of
    rows in that status. Operators in alphabetical order ignoring case, unknown ones last."""
    frame = rows.assign(operator=rows["operator"].fillna(UNKNOWN_OPERATOR),
                        country=rows["country"].fillna(""),
                        network=rows["mcc"].fillna("") + "-" + rows["mnc"].fillna(""),
                        status=rows["status"].fillna("(no status)"),
                        value=rows["value"] if "value" in rows else None)
    index = ["operator", "country", "network"]
    if frame["feature_group"].nunique() > 1:
        index.insert(0, "feature_group")
    table = frame.pivot_table(index=index, columns="status", values="identity_hash",
                              aggfunc="count", fill_value=0)
    table.columns = [str(col) for col in table.columns]
    values = frame.groupby(index, dropna=False)["value"].agg(_values)
    table.insert(0, "value", values.reindex(table.index).fillna(""))
    table = table.reset_index()
    order = pd.DataFrame({"unknown": table["operator"] == UNKNOWN_OPERATOR,
                          "operator": table["operator"].str.casefold(),
                          "country": table["country"].str.casefold(),
                          "network": table["network"],
                          "group": table.get("feature_group", pd.Series("", table.index))})
    ranked = order.sort_values(["unknown", "operator", "country", "network", "group"],
                               kind="stable").index
    return table.loc[ranked].reset_index(drop=True)


def _styled(table: pd.DataFrame) -> Any:
    statuses = [col for col in table.columns if col not in KEYS]

    def paint(col: pd.Series) -> list[str]:
        color = STATUS_COLORS.get(str(col.name), "#dbe9f6")
        return [f"background-color: {color}" if v else "color: #bbb" for v in col]

    shown = table.copy()
    return shown.style.apply(paint, subset=statuses).format(
        {s: (lambda v: "●" if v == 1 else (str(v) if v else "·")) for s in statuses})


def timeline(c: Ctx, version: int, identity: str, label: str) -> None:
    spec = QuerySpec(table="changes", filters=(("identity_hash", identity),),
                     order=("changed_at", "id"), limit=1000,
                     columns=("id", "run_id", "op", "changed_at", "changed_fields",
                              "before_json", "after_json"))
    changes = cache.page(c, version, spec).rows.to_pylist()
    window = c.engine.snapshot(version).manifest.changes_window_days
    st.subheader(f"History of {label}")
    if not changes:
        st.info(f"No change of this row in the snapshot's window (the last {window} days). "
                f"Older history: `fmw changes --identity {identity[:12]}`.")
        return
    st.caption(f"{len(changes)} change(s) in the last {window} days, oldest first · "
               f"{timefmt.caption(c.ui.timezone)}")
    for i, ch in enumerate(changes):
        op = OPS.get(str(ch["op"]), str(ch["op"]))
        when = timefmt.fmt(ch["changed_at"], c.ui.timezone)
        fields = ch.get("changed_fields") or []
        after, before = as_dict(ch["after_json"]), as_dict(ch["before_json"])
        status = (after or before).get("status")
        title = f"{when} · {op} · run {ch['run_id']}" + (f" · status {status}" if status else "")
        if fields:
            title += " · " + ", ".join(fields)
        with st.expander(title, expanded=(i == len(changes) - 1),
                         icon=":material/radio_button_checked:"):
            side_by_side(before, after, fields, key=f"ft_change_{ch['id']}")


def page() -> None:
    c = ctx()
    st.title("Feature")
    version = current_version(c)
    if version is None:
        return
    params = url_params()
    groups = sorted(cache.groups(c, version))
    if "ft_group" not in st.session_state:
        wanted = (params.get("feature_group") or [""])[0]
        st.session_state["ft_group"] = wanted if wanted in groups else ALL
        st.session_state["ft_name"] = next(iter(params.get("feature_name") or []), None)
        st.session_state["ft_identity"] = next(iter(params.get("identity") or []), None)
    left, mid, right = st.columns([2, 2, 3])
    group = left.selectbox("Feature group", [ALL, *groups], key="ft_group")
    search = mid.text_input("Find a feature", key="ft_search", placeholder="part of the name")
    g = None if group == ALL else str(group)
    try:
        names = _names(c, version, g, search)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "The feature list")
        return
    options = [n for n, _ in names]
    current = st.session_state.get("ft_name")
    if current and current not in options:
        options.insert(0, str(current))
    counts = dict(names)
    if len(names) >= 1000:
        mid.caption("The 1,000 features with the most rows are listed; type to find others.")
    name = right.selectbox("Feature", options, key="ft_name",
                           placeholder=f"{len(names):,} features; pick one",
                           format_func=lambda n: f"{n} · {counts.get(n, 0):,} rows")
    set_url_params({"feature_group": [g] if g else [], "feature_name": [name] if name else []})
    if not name:
        st.info("Pick a feature to see its status on every operator.")
        return
    spec = QuerySpec(feature_group=g, filters=(("feature_name", escape(str(name))),),
                     columns=MATRIX_COLUMNS, order=("operator", "mcc", "mnc"), limit=MAX_LIMIT)
    try:
        result = cache.page(c, version, spec)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "The status matrix")
        return
    rows = result.rows.to_pandas()
    if rows.empty:
        st.warning(f"No feature named {name!r}" + (f" in group {g}" if g else "") + ".")
        return
    total = int(result.total or 0)
    by_status = rows["status"].fillna("(no status)").value_counts()
    st.markdown(f"**{name}** on **{len(rows):,}** operator network(s): " + " · ".join(
        f"{s} {n:,}" for s, n in by_status.items()))
    if total > len(rows):
        st.caption(f"Showing the first {len(rows):,} of {total:,} rows.")
    table = matrix(rows)
    st.dataframe(_styled(table), hide_index=True, width="stretch",
                 height=grid_height(len(table)), key="ft_matrix",
                 column_config={"network": st.column_config.TextColumn("MCC-MNC"),
                                "value": st.column_config.TextColumn(
                                    "value", help="The feature's value on that network "
                                    "(codec, version…)")})
    ordered = rows.assign(_unknown=rows["operator"].isna(),
                          _op=rows["operator"].fillna("").str.casefold()).sort_values(
        ["_unknown", "_op", "mcc", "mnc", "feature_group"], kind="stable")
    labels = {f"{r.operator or UNKNOWN_OPERATOR} · {r.mcc}-{r.mnc} · {r.feature_group}":
              r.identity_hash for r in ordered.itertuples()}
    by_hash = {h: label for label, h in labels.items()}
    chosen_hash = st.session_state.get("ft_identity")
    index = list(labels).index(by_hash[chosen_hash]) if chosen_hash in by_hash else None
    label = st.selectbox("Timeline of one operator's row", list(labels), index=index,
                         placeholder="pick an operator network")
    identity = labels[label] if label else None
    st.session_state["ft_identity"] = identity
    set_url_params({"feature_group": [g] if g else [], "feature_name": [str(name)],
                    "identity": [identity] if identity else []})
    if label and identity:
        timeline(c, version, identity, f"{name} on {label}")
