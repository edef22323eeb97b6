"""History: the changes (C/U/D) in the snapshot's window with filters, one change's before and
after side by side, and the difference between two snapshot versions."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import streamlit as st

from query import QuerySpec
from ui import cache, timefmt
from ui.context import Ctx, ctx
from ui.diffview import as_dict, change_summary, side_by_side
from ui.widgets import (
    arrow_for_display,
    current_version,
    selected_row,
    set_url_params,
    show_error,
    table_height,
    url_params,
)

ALL = "(all groups)"
OPS = ("C", "U", "D")
OP_NAMES = {"C": "created", "U": "updated", "D": "deleted"}
LIST_COLUMNS = ("id", "changed_at", "run_id", "op", "feature_group", "identity_hash",
                "changed_fields")
JSON_COLUMNS = ("id", "before_json", "after_json")
PAGE_SIZE = 50
JUMP_ASKED = "hi_jump_asked"
JUMP_NOTE = "hi_jump_note"
MODES = ("Changes", "Compare snapshot versions")


def change_filters(since: date | None, until: date | None, run: int | None,
                   group: str | None, ops: list[str], tz: str = "UTC"
                   ) -> tuple[tuple[str, str], ...]:
    """The changes-table filters for the History controls (dates are whole days in `tz`,
    the zone the page shows its times in)."""
    out: list[tuple[str, str]] = []
    if since:
        out.append(("changed_at__gte", timefmt.day_start(since, tz).isoformat()))
    if until:
        out.append(("changed_at__lt",
                    timefmt.day_start(until + timedelta(days=1), tz).isoformat()))
    if run:
        out.append(("run_id", str(run)))
    if group:
        out.append(("feature_group", group))
    if ops and set(ops) != set(OPS):
        out.append(("op", ",".join(ops)))
    return tuple(out)


def _picked(picked: Any, n: int) -> int:
    """The selected row, or the first when none is (a selection kept from a longer page
    points past the end)."""
    i = selected_row(picked) or 0
    return i if i < n else 0


def _first_page() -> None:
    st.session_state["hi_page"] = 1


def _jump() -> None:
    st.session_state[JUMP_ASKED] = True


def jump_page(newer: int, total: int, page_size: int = PAGE_SIZE) -> int:
    """The page (newest first) holding the first change on or before a day, given `newer`
    changes after that day; the last page when every change is newer."""
    pages = max(1, math.ceil(total / page_size))
    return min(pages, newer // page_size + 1)


def _label(row: dict[str, Any]) -> str:
    d = as_dict(row.get("after_json")) or as_dict(row.get("before_json"))
    return f"{d.get('feature_name') or '?'} · {d.get('mcc') or '?'}-{d.get('mnc') or '?'}"


def _seed(params: dict[str, list[str]]) -> None:
    if "hi_seeded" in st.session_state:
        return
    st.session_state["hi_seeded"] = True

    def one(name: str) -> str:
        return (params.get(name) or [""])[0]

    st.session_state["hi_dates"] = ()
    try:
        since = date.fromisoformat(one("since")) if one("since") else None
        until = date.fromisoformat(one("until")) if one("until") else None
        st.session_state["hi_dates"] = tuple(d for d in (since, until) if d)
    except ValueError:
        st.session_state["hi_url_error"] = (f"URL dates since={one('since')!r} / "
                                            f"until={one('until')!r} are not YYYY-MM-DD")
    st.session_state["hi_run"] = one("run")
    st.session_state["hi_group"] = one("group") or ALL
    ops = [o for o in (params.get("op") or []) if o in OPS]
    st.session_state["hi_ops"] = ops or list(OPS)
    st.session_state["hi_q"] = one("q")


def with_payload(c: Ctx, version: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's rows with their before/after JSON, read for those ids only: sorting a
    million changes is cheap, carrying their JSON through the sort is not."""
    if not rows:
        return rows
    ids = ",".join(str(r["id"]) for r in rows)
    spec = QuerySpec(table="changes", filters=(("id", ids),), columns=JSON_COLUMNS,
                     limit=len(rows))
    payload = {r["id"]: r for r in cache.page(c, version, spec).rows.to_pylist()}
    return [{**r, **payload.get(r["id"], {"before_json": None, "after_json": None})}
            for r in rows]


def changes_tab(c: Ctx, version: int) -> None:
    _seed(url_params())
    groups = sorted(cache.groups(c, version))
    a, b, cc, d, e = st.columns([3, 1, 2, 3, 2], vertical_alignment="bottom")
    dates = a.date_input("Changed between", key="hi_dates", format="YYYY-MM-DD",
                         on_change=_first_page)
    run_text = b.text_input("Run", key="hi_run", placeholder="any", on_change=_first_page)
    group_opts = [ALL, *groups]
    if st.session_state.get("hi_group") not in group_opts:
        group_opts.append(str(st.session_state["hi_group"]))
    group = cc.selectbox("Group", group_opts, key="hi_group", on_change=_first_page)
    ops = d.pills("Change", list(OPS), selection_mode="multi", key="hi_ops",
                  format_func=lambda o: OP_NAMES[o], on_change=_first_page)
    q = e.text_input("Text", key="hi_q", placeholder="any text in the row",
                     on_change=_first_page)
    problems = [p for p in [st.session_state.get("hi_url_error")] if p]
    run: int | None = None
    if run_text.strip():
        if run_text.strip().isdigit():
            run = int(run_text.strip())
        else:
            problems.append(f"Run {run_text.strip()!r} is not a run number (e.g. 12)")
    dates_t = tuple(dates) if isinstance(dates, list | tuple) else (dates,)
    since = dates_t[0] if dates_t else None
    until = dates_t[1] if len(dates_t) > 1 else since
    g = None if group == ALL else str(group)
    set_url_params({"since": [since.isoformat()] if since else [],
                    "until": [until.isoformat()] if until else [],
                    "run": [str(run)] if run else [], "group": [g] if g else [],
                    "op": list(ops) if ops and set(ops) != set(OPS) else [],
                    "q": [q] if q.strip() else []})
    for p in problems:
        st.error(p)
    if problems:
        return
    if not ops:
        st.info("Pick at least one kind of change.")
        return
    tz = c.ui.timezone
    filters = change_filters(since, until, run, g, list(ops), tz)
    if st.session_state.pop(JUMP_ASKED, False) and st.session_state.get("hi_jump"):
        try:
            jump_to(c, version, filters, q, st.session_state["hi_jump"], tz)
        except Exception as exc:  # noqa: BLE001
            show_error(exc, "The jump")
    page_no = int(st.session_state.get("hi_page", 1))
    spec = QuerySpec(table="changes", filters=filters, q=q.strip() or None,
                     columns=LIST_COLUMNS, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
    try:
        result = cache.page(c, version, spec)
        rows = with_payload(c, version, result.rows.to_pylist())
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "The change list")
        return
    total = int(result.total or 0)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if page_no > pages:
        _first_page()
        st.rerun()
    window = c.engine.snapshot(version).manifest.changes_window_days
    shown = pa.table({
        "id": [r["id"] for r in rows],
        "changed at": pa.array([r["changed_at"] for r in rows], result.rows.schema.field(
            "changed_at").type),
        "run": [r["run_id"] for r in rows],
        "change": [OP_NAMES.get(r["op"], r["op"]) for r in rows],
        "group": [r["feature_group"] for r in rows],
        "feature": [_label(r) for r in rows],
        "before → after": [change_summary(r["before_json"], r["after_json"],
                                          r["changed_fields"]) for r in rows],
    })
    st.caption(f"{total:,} change(s) · newest first · the snapshot holds the last {window} "
               f"days (older: `fmw changes`) · page {page_no:,} of {pages:,} · "
               f"{timefmt.caption(tz)}")
    note = st.session_state.pop(JUMP_NOTE, None)
    if note:
        st.info(note, icon=":material/event:")
    picked = st.dataframe(timefmt.to_zone(arrow_for_display(shown), tz), hide_index=True,
                          on_select="rerun", selection_mode="single-row", key="hi_table",
                          height=table_height(len(rows), 420), width="stretch",
                          column_config={**timefmt.column_config(["changed at"], tz),
                                         "id": st.column_config.NumberColumn(width="small"),
                                         "run": st.column_config.NumberColumn(width="small"),
                                         "before → after": st.column_config.TextColumn(
                                             width="large")})
    pager(page_no, pages)
    if not rows:
        st.info("No change matches these filters.")
        return
    row = rows[_picked(picked, len(rows))]
    st.markdown(f"**Change {row['id']}**: {OP_NAMES.get(row['op'], row['op'])} "
                f"{_label(row)} · run {row['run_id']}")
    side_by_side(row["before_json"], row["after_json"], row["changed_fields"], key="hi_diff")


def jump_to(c: Ctx, version: int, filters: tuple[tuple[str, str], ...], q: str, day: date,
            tz: str) -> None:
    """Go to the page holding the newest change on or before `day` (whole days in `tz`)."""
    def count(extra: tuple[tuple[str, str], ...]) -> int:
        spec = QuerySpec(table="changes", filters=(*filters, *extra), q=q.strip() or None,
                         columns=("id",), limit=1)
        return int(cache.page(c, version, spec).total or 0)

    total = count(())
    newer = count((("changed_at__gte", timefmt.day_start(day + timedelta(days=1), tz)
                    .isoformat()),))
    page_no = jump_page(newer, total, PAGE_SIZE)
    st.session_state["hi_page"] = page_no
    if total and newer >= total:
        st.session_state[JUMP_NOTE] = (f"No change on or before {day:%Y-%m-%d}; the oldest "
                                       f"changes are on page {page_no:,}.")
    elif total:
        st.session_state[JUMP_NOTE] = (f"{day:%Y-%m-%d}: the newest change on or before it is "
                                       f"row {newer + 1:,}, on page {page_no:,}.")


def pager(page_no: int, pages: int) -> None:
    """Newer / older, a page number, and a day to jump to."""
    p1, p2, p3, p4, _ = st.columns([1, 1, 1.4, 2, 3], vertical_alignment="bottom")
    p1.button("◀ Newer", disabled=page_no <= 1, key="hi_prev",
              on_click=lambda: st.session_state.update(hi_page=page_no - 1))
    p2.button("Older ▶", disabled=page_no >= pages, key="hi_next",
              on_click=lambda: st.session_state.update(hi_page=page_no + 1))
    p3.number_input("Page", min_value=1, max_value=pages, step=1, key="hi_page")
    p4.date_input("Jump to day", value=None, key="hi_jump", format="YYYY-MM-DD",
                  on_change=_jump, help="Show the page with the newest change on or before "
                  "this day")


def versions_tab(c: Ctx, version: int) -> None:
    infos = cache.versions(c, version)
    if len(infos) < 2:
        st.info("Only one snapshot version is kept, so there is nothing to compare yet.")
        return
    tz = c.ui.timezone
    # a version's row count covers every row: not shown to a row scope
    names = {i.version: f"{i.name} · {timefmt.fmt(i.created_at, tz)}"
             + (f" · {i.rows:,} rows" if c.scope is None else "")
             + (" (current)" if i.current else "") for i in infos}
    ordered = [i.version for i in infos]
    a, b, cc = st.columns([3, 3, 2])
    label: Callable[[Any], str] = lambda v: names.get(v, str(v))  # noqa: E731
    new = a.selectbox("Newer version", ordered, index=0, format_func=label, key="hi_new")
    old = b.selectbox("Older version", ordered, index=1, format_func=label, key="hi_old")
    groups = sorted(cache.groups(c, version))
    group = cc.selectbox("Group", [ALL, *groups], key="hi_vgroup")
    if old == new:
        st.info("Pick two different versions.")
        return
    try:
        d = cache.diff(c, int(old), int(new), None if group == ALL else str(group), 1000, 0)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "The comparison")
        return
    m1, m2, m3 = st.columns(3)
    m1.metric("Added", f"{d.added:,}", border=True)
    m2.metric("Removed", f"{d.removed:,}", border=True)
    m3.metric("Changed", f"{d.changed:,}", border=True)
    if d.rows.num_rows == 0:
        st.info("The two versions hold the same features.")
        return
    rows = d.rows.to_pylist()
    shown = d.rows.select(["change", "feature_group", "feature_name", "mcc", "mnc",
                           "changed_fields"])
    if len(rows) < d.added + d.removed + d.changed:
        st.caption(f"Showing the first {len(rows):,} differences.")
    picked = st.dataframe(arrow_for_display(shown), hide_index=True, on_select="rerun",
                          selection_mode="single-row", key="hi_vtable",
                          height=table_height(len(rows), 260), width="stretch")
    row = rows[_picked(picked, len(rows))]
    st.markdown(f"**{row['change'].capitalize()}**: {row['feature_name']} · "
                f"{row['mcc']}-{row['mnc']}")
    side_by_side(row["before_json"], row["after_json"], row["changed_fields"], key="hi_vdiff")


def page() -> None:
    c = ctx()
    st.title("History")
    version = current_version(c)
    if version is None:
        return
    # one view at a time: comparing versions of a large snapshot is a join worth not running
    # while someone only looks at the change list
    mode = st.segmented_control("View", list(MODES), default=MODES[0], key="hi_mode",
                                label_visibility="collapsed") or MODES[0]
    if mode == MODES[0]:
        changes_tab(c, version)
    else:
        versions_tab(c, version)
