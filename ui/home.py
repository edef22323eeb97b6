"""Home: what changed (created / updated / deleted / errors per period), the last sync, the
snapshot's age, the daily trend, open SLA violations and the explorer's own usage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from ui import cache, timefmt
from ui.context import Ctx, ctx, recorder
from ui.reads import COUNT_FIELDS, HomeData, SnapshotFacts, snapshot_facts
from ui.usage import LedgerView, UsageRecorder
from ui.widgets import current_version, fmt_int, show_error

PERIOD_KEY = "home_period"
#: The trend shows at least this many days, so one busy day is not one page-wide bar.
MIN_TREND_DAYS = 7
STATUS_COLOR = {"succeeded": "green", "partial": "orange", "failed": "red", "running": "blue",
                "skipped": "gray"}


def _age(hours: float) -> str:
    if hours < 1:
        return f"{max(0, int(hours * 60))} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def status_row(c: Ctx, facts: SnapshotFacts, data: HomeData, view: LedgerView) -> None:
    left, mid, right = st.columns(3)
    if c.scope is not None:  # the runs and the SLA concern every row: not for a row scope
        snapshot_card(c, facts, mid)
        return
    with left.container(border=True):
        st.caption("Last sync (as recorded in the snapshot)")
        run = data.last_run
        if run is None:
            st.markdown("No run recorded yet.")
        else:
            status = str(run.get("status"))
            st.badge(status, color=STATUS_COLOR.get(status, "gray"))  # type: ignore[arg-type]
            ended = run.get("finished_at") or run.get("started_at")
            when = timefmt.fmt(ended if isinstance(ended, datetime) else None, c.ui.timezone)
            st.markdown(f"Run **{run.get('id')}** ({run.get('trigger')}) at {when}")
            if run.get("error_summary"):
                st.caption(str(run["error_summary"])[:300])
    snapshot_card(c, facts, mid)
    with right.container(border=True):
        st.caption("Open SLA violations")
        sla_card(view, c.ui.timezone)


def snapshot_card(c: Ctx, facts: SnapshotFacts, where: Any) -> None:
    """The snapshot's age and size (for a row scope: the rows and groups in it)."""
    now = datetime.now(UTC)
    with where.container(border=True):
        st.caption("Snapshot")
        stale = facts.stale(now, c.ui.stale_hours)
        age = _age(facts.age_hours(now))
        if stale:
            st.badge(f"stale: {age} old", color="red", icon=":material/schedule:")
            st.markdown(f":red[**{facts.name}** is older than {c.ui.stale_hours:g} h: "
                        "the last syncs did not publish.]")
        else:
            st.badge(f"fresh: {age} old", color="green", icon=":material/check_circle:")
            mine = " you can see" if c.scope is not None else ""
            st.markdown(f"**{facts.name}**, {fmt_int(facts.rows)} features{mine} in "
                        f"{len(facts.groups)} groups")


def ops_row(view: LedgerView) -> None:
    """Bad rows as open items, this month's incidents and the v1 p95 (the operations KPIs), as
    last read from the ledger; said to be unknown while it cannot be reached."""
    o = view.ops
    if o is None:
        if view.error:
            st.caption("Operations figures (bad rows, incidents, API p95): not known while the "
                       "ledger cannot be reached.")
        return
    a, b, d = st.columns(3)
    if o.problems_open is not None:
        a.metric("Bad rows open", fmt_int(o.problems_open),
                 f"{o.problems_new_today or 0:,} new, {o.problems_fixed_today or 0:,} fixed today",
                 delta_color="off", delta_arrow="off", help=("Oldest: " + o.oldest_problem) if o.oldest_problem
                 else "A bad row is open until its source no longer delivers it.")
    if o.incidents_month is not None:
        down = o.downtime_month_s or 0.0
        b.metric("Incidents this month", fmt_int(o.incidents_month),
                 f"{int(down // 3600)} h {int(down % 3600 // 60)} min down"
                 + (f", {o.incidents_open} open" if o.incidents_open else ""),
                 delta_color="off", delta_arrow="off", help="Target: at most 1 a month (ledger outage, sync "
                 "failing past its retries, stale snapshot).")
    if o.p95_24h_ms is not None:
        p95 = ("no requests" if not o.requests_24h else "over 30 s" if o.p95_24h_ms == float("inf")
               else f"≤ {o.p95_24h_ms / 1000:g} s")
        d.metric("API p95, last 24 h", p95, f"{o.requests_24h or 0:,} v1 requests",
                 delta_color="off", delta_arrow="off", help="Every API process, kept in the ledger. Target < 3 s.")
    if view.error:
        st.caption("Figures as last read: the ledger cannot be reached right now.")


def sla_card(view: LedgerView, tz: str) -> None:
    """Open violations as last read from the ledger. While the ledger cannot be reached the
    card says it cannot know (an earlier "none open" may no longer be true)."""
    if view.error:
        st.badge("cannot know", color="gray", icon=":material/cloud_off:")
        st.markdown("Not known: the ledger (PostgreSQL) is not reachable right now.")
        if view.sla is not None and view.read_at is not None:
            st.caption(f"Last read {timefmt.fmt(view.read_at, tz)}: "
                       f"{len(view.sla) or 'none'} open then.")
    elif view.sla is None:
        st.markdown("Checking the ledger…")
    elif not view.sla:
        st.badge("none open", color="green")
    else:
        st.badge(f"{len(view.sla)} open", color="red", icon=":material/warning:")
        for v in view.sla[:3]:
            st.markdown(f"**{v.sla_name}** since {timefmt.fmt(v.opened_at, tz)}: {v.detail}")


def delta_text(n: int) -> str:
    """A change as Streamlit's metric shows it beside its arrow: ``1,010,000``, ``-5``."""
    return f"{n:,}"


def cards(data: HomeData) -> None:
    labels = [w.label for w in data.windows]
    chosen = st.segmented_control("Period", labels, default="7 days", key=PERIOD_KEY,
                                  label_visibility="collapsed") or "7 days"
    window = next(w for w in data.windows if w.label == chosen)
    span = (f"{window.first:%Y-%m-%d}" if window.days == 1
            else f"{window.first:%Y-%m-%d} – {window.last:%Y-%m-%d}")
    cols = st.columns(len(data.fields))
    for col, name in zip(cols, data.fields, strict=True):
        now, before = window.totals[name], window.previous[name]
        col.metric(name.capitalize(), fmt_int(now), delta=delta_text(now - before),
                   delta_color="inverse" if name == "errors" else "off", border=True,
                   help=f"{span}; change against the {window.days} day(s) before")
    rows = [{"period": w.label, "from": w.first, "to": w.last,
             **{k: w.totals[k] for k in data.fields}} for w in data.windows]
    with st.expander("All periods", expanded=False):
        st.dataframe(rows, hide_index=True, width="stretch")


def trend_frame(data: HomeData) -> pd.DataFrame:
    """The trend in long form (day, kind, n), from the first day with a change to today (at
    least a week): days before the first change would only squeeze the bars that matter."""
    frame = data.trend.to_pandas()
    busy = frame[frame[list(data.fields)].sum(axis=1) > 0]["day"]
    first: date = min(busy.min() if len(busy) else data.today,
                      data.today - timedelta(days=MIN_TREND_DAYS - 1))
    frame = frame[(frame["day"] >= first) & (frame["day"] <= data.today)]
    long = frame.melt(id_vars="day", value_vars=list(data.fields), var_name="kind",
                      value_name="n")
    long["day"] = pd.to_datetime(long["day"]).dt.strftime("%Y-%m-%d")
    return long


def trend_chart(long: pd.DataFrame) -> alt.Chart:
    """Stacked bars, one band per day: an ordinal axis gives every day (today included) a
    whole bar, where a time axis centres bars on midnight and cuts the last one in half."""
    days = sorted(long["day"].unique())
    kinds = [k for k in COUNT_FIELDS if k in set(long["kind"])]
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("day:O", sort=days, title=None,
                axis=alt.Axis(labelExpr="slice(datum.value, 5)", labelAngle=0,
                              labelOverlap=True)),
        y=alt.Y("sum(n):Q", title=None),
        color=alt.Color("kind:N", sort=kinds, title=None, scale=alt.Scale(domain=kinds)),
        order=alt.Order("kind_order:Q"),
        tooltip=[alt.Tooltip("day:O"), alt.Tooltip("kind:N"), alt.Tooltip("n:Q", format=",")],
    ).transform_calculate(
        kind_order=" + ".join(f"(datum.kind == '{k}' ? {i} : 0)"
                              for i, k in enumerate(kinds))
    ).properties(height=220)


def trend(data: HomeData) -> None:
    long = trend_frame(data)
    if not long["n"].any():
        st.caption("Changes per day, last 30 days")
        st.info("No change in the last 30 days.", icon=":material/bar_chart:")
        return
    st.caption(f"Changes per day, {long['day'].min()} to today {data.today:%Y-%m-%d} "
               "(of the last 30 days, those from the first change on)")
    st.altair_chart(trend_chart(long), width="stretch")


def usage(c: Ctx, rec: UsageRecorder) -> None:
    view = rec.view
    team = c.ui.team_size
    summary = view.usage
    source = "ledger"
    if summary is None:
        summary, source = rec.local_summary(), "this explorer process only (ledger not reached)"
    with st.expander(f"Explorer usage: {summary.weekly_active} weekly active users "
                     f"({summary.weekly_active / team:.0%} of {team})", expanded=False):
        st.caption(f"Distinct client addresses with a page view in the last 7 days "
                   f"(previous 7 days: {summary.previous_weekly_active}); source: {source}. "
                   f"Target: 70 % of the team.")
        if view.error:
            st.caption(f"{view.error}; {view.pending} view(s) waiting to be written")
        days = pd.DataFrame({"day": [f"{d.day:%Y-%m-%d}" for d in summary.per_day],
                             "users": [d.clients for d in summary.per_day],
                             "views": [d.views for d in summary.per_day]})
        st.altair_chart(alt.Chart(days).mark_bar().encode(
            x=alt.X("day:O", title=None, axis=alt.Axis(labelExpr="slice(datum.value, 5)",
                                                       labelAngle=0, labelOverlap=True)),
            y=alt.Y("users:Q", title=None),
            tooltip=["day", "users", "views"]).properties(height=160), width="stretch")


def page() -> None:
    c = ctx()
    st.title("FMW explorer")
    st.caption(timefmt.caption(c.ui.timezone) + "; days are counted in that zone too.")
    version = current_version(c)
    if version is None:
        return
    try:
        facts = snapshot_facts(c.engine, version)
        today = timefmt.today(c.ui.timezone)
        if c.scope is None:
            data = cache.home(c, version, today)
        else:  # every figure recounted within the scope
            groups = cache.groups(c, version)
            facts = replace(facts, rows=sum(groups.values()), groups=groups)
            data = cache.scoped_home(c, version, today, c.scope)
    except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
        show_error(exc, "Home")
        return
    rec = recorder(c.settings, c.ui)
    status_row(c, facts, data, rec.view)
    if c.viewer.admin:
        ops_row(rec.view)
    if c.scope is not None:
        st.caption("Counted from the changes of the rows you can see (errors and runs "
                   "concern every row and are not shown).")
    cards(data)
    trend(data)
    if c.scope is None:
        usage(c, rec)
