"""The Overview's filter panel: widgets seeded from the URL, facet counts beside each choice.

A widget's value is always the canonical option (``volte``), never its label (``volte · 28``).
Streamlit identifies a choice by its label, and the labels carry live counts: when a count
changes, the browser still holds the old label, which Streamlit hands back as the value (issue
12: "unknown feature group 'volte · 18,930'"). So every run writes the canonical values back into
the widgets (which also sends the browser the new labels), and a label that still comes back is
mapped to its value through the labels of the last runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import streamlit as st

from query import QuerySpec
from ui.context import Ctx
from ui.viewstate import (
    DEFAULT_COLUMNS,
    FACET_FIELDS,
    ViewState,
    format_advanced,
    parse_advanced,
)
from ui.widgets import seed

ALL_GROUPS = "(all groups)"
#: Session key of {widget key: {label: value}}: the labels the browser may still send.
SHOWN_LABELS = "_ov_labels"
DEFAULT_ORDER = "(default order)"
LABELS = {"status": "Status", "region": "Region", "country": "Country", "operator": "Operator"}


def key(name: str) -> str:
    return f"ov_{name}"


def reset_page() -> None:
    st.session_state[key("page")] = 1


def clear_filters() -> None:
    for name in FACET_FIELDS:
        st.session_state[key(name)] = []
    for name in ("mcc", "mnc", "q", "adv"):
        st.session_state[key(name)] = ""
    st.session_state[key("feature_group")] = ALL_GROUPS
    reset_page()


def default_columns(available: Sequence[str]) -> list[str]:
    return [c for c in DEFAULT_COLUMNS if c in available] or list(available)


def seed_from(state: ViewState, available: Sequence[str]) -> None:
    """Put a view (from the URL) into the widgets."""
    seed(key("feature_group"), state.group or ALL_GROUPS)
    for name in FACET_FIELDS:
        seed(key(name), list(state.chosen(name)))
    seed(key("mcc"), state.mcc)
    seed(key("mnc"), state.mnc)
    seed(key("q"), state.q)
    seed(key("adv"), format_advanced(state.extra))
    seed(key("columns"), list(state.columns) or default_columns(available))
    first = state.order.split(",")[0].strip() if state.order else ""
    seed(key("order"), first.lstrip("+-") or DEFAULT_ORDER)
    seed(key("desc"), first.startswith("-"))
    seed(key("page"), state.page)
    seed(key("size"), state.size)


def canonical(widget: str, value: Any) -> Any:
    """`value` of a widget, a label shown in one of the last two runs mapped to its option."""
    runs = st.session_state.get(SHOWN_LABELS, {}).get(widget, ())
    shown = {k: v for labels in reversed(runs) for k, v in labels.items()}
    if isinstance(value, str) and value in shown and value not in shown.values():
        return shown[value]
    return value


def _remember_labels(widget: str, options: Sequence[str], label: Callable[[Any], str]) -> None:
    """Keep this run's labels and the previous run's (which a browser may still send)."""
    seen = dict(st.session_state.get(SHOWN_LABELS, {}))
    seen[widget] = (*seen.get(widget, ())[-1:], {label(o): o for o in options})
    st.session_state[SHOWN_LABELS] = seen


def state_from_widgets(available: Sequence[str]) -> tuple[ViewState, list[str]]:
    """The view the widgets describe (read before they are drawn), and advanced-filter errors."""
    ss = st.session_state
    group = canonical(key("feature_group"), ss.get(key("feature_group"), ALL_GROUPS))
    extra, problems = parse_advanced(str(ss.get(key("adv"), "")))
    columns = [c for c in ss.get(key("columns"), []) if c]
    order_col = ss.get(key("order"), DEFAULT_ORDER)
    order = "" if order_col in (DEFAULT_ORDER, None) else (
        ("-" if ss.get(key("desc")) else "") + str(order_col))
    state = ViewState(
        group=None if group in (ALL_GROUPS, None) else str(group),
        mcc=str(ss.get(key("mcc"), "") or ""), mnc=str(ss.get(key("mnc"), "") or ""),
        q=str(ss.get(key("q"), "") or ""), extra=extra,
        columns=tuple(columns) if columns != default_columns(available) else (),
        order=order, page=max(1, int(ss.get(key("page"), 1) or 1)),
        size=int(ss.get(key("size"), 100) or 100),
    )
    for name in FACET_FIELDS:
        values = (str(canonical(key(name), v)) for v in ss.get(key(name), []))
        state = state.with_choice(name, list(dict.fromkeys(values)))
    return state, problems


def facet_specs(state: ViewState, available: Sequence[str]
                ) -> list[tuple[QuerySpec, list[str]]]:
    """Each facet column under the view's filters without its own: columns with nothing chosen
    share one spec, so a plain view costs one facet call."""
    shared: list[str] = []
    out: list[tuple[QuerySpec, list[str]]] = []
    for name in FACET_FIELDS:
        if name not in available:
            continue
        if state.chosen(name):
            out.append((state.spec(paged=False, without=name, columns=()), [name]))
        else:
            shared.append(name)
    if shared:
        out.insert(0, (state.spec(paged=False, columns=()), shared))
    if state.group:
        out.append((replace(state, group=None).spec(paged=False, columns=()),
                    ["feature_group"]))
    else:
        for spec, cols in out:
            if spec == state.spec(paged=False, columns=()):
                cols.append("feature_group")
                break
        else:
            out.append((state.spec(paged=False, columns=()), ["feature_group"]))
    return out


def _options(counts: list[tuple[Any, int]], chosen: Sequence[str]) -> tuple[list[str],
                                                                            dict[str, int]]:
    by_value = {str(v): n for v, n in counts if v is not None}
    options = list(by_value)
    options.extend(v for v in chosen if v not in by_value)
    return options, by_value


def _counted(counts: dict[str, int]) -> Callable[[Any], str]:
    def label(value: Any) -> str:
        return f"{value} · {counts.get(str(value), 0):,}"
    return label


def panel(c: Ctx, version: int, state: ViewState, groups: dict[str, int],
          facets: dict[str, list[tuple[Any, int]]] | None) -> None:
    """Draw the filters (in the sidebar) with their counts."""
    sb = st.sidebar
    sb.subheader("Filters")
    group_counts = dict((str(v), n) for v, n in (facets or {}).get("feature_group", [])) \
        if facets else dict(groups)
    options = [ALL_GROUPS, *sorted(set(groups) | ({state.group} if state.group else set()))]

    def group_label(g: str) -> str:
        return g if g == ALL_GROUPS else f"{g} · {group_counts.get(g, 0):,}"

    _remember_labels(key("feature_group"), options, group_label)
    st.session_state[key("feature_group")] = state.group or ALL_GROUPS  # see the module doc
    sb.selectbox("Feature group", options, key=key("feature_group"), on_change=reset_page,
                 format_func=group_label)
    for name in FACET_FIELDS:
        chosen = list(state.chosen(name))
        opts, counts = _options((facets or {}).get(name, []), chosen)
        _remember_labels(key(name), opts, _counted(counts))
        st.session_state[key(name)] = chosen
        sb.multiselect(LABELS[name], opts, key=key(name), on_change=reset_page,
                       format_func=_counted(counts), placeholder="any")
        if facets is not None and len(counts) >= 1000:
            sb.caption(f"Showing the 1,000 most frequent {name} values; narrow by country "
                       "or region to see the rest.")
    left, right = sb.columns(2)
    left.text_input("MCC", key=key("mcc"), on_change=reset_page, placeholder="any",
                    help="3 digits, e.g. 450; several separated by commas: 450,440")
    right.text_input("MNC", key=key("mnc"), on_change=reset_page, placeholder="any",
                     help="2 or 3 digits as written, e.g. 05 or 410; several separated by "
                          "commas")
    sb.text_input("Search", key=key("q"), on_change=reset_page,
                  placeholder="name, value, notes, operator",
                  help="Every word must occur (case-insensitively) in the feature name, value, "
                       "notes or operator.")
    sb.text_input("Advanced filters", key=key("adv"), on_change=reset_page,
                  placeholder="none (e.g. owner__icontains=kim)",
                  help="The v1 API's filter syntax: field=value, field__ne, __contains, "
                       "__icontains, __startswith, __gt, __gte, __lt, __lte, __isnull; "
                       "join several with &.")
    sb.button("Clear filters", on_click=clear_filters, width="stretch")
