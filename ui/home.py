"""Home: what changed (created / updated / deleted / errors per period), the last sync, the
snapshot's age, the daily trend, open SLA violations and the explorer's own usage."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import streamlit as st

from ui import cache
from ui.context import Ctx, ctx, recorder
from ui.reads import COUNT_FIELDS, HomeData, SnapshotFacts, snapshot_facts
from ui.usage import LedgerView, UsageRecorder
from ui.widgets import current_version, fmt_int, show_error

PERIOD_KEY = "home_period"
STATUS_COLOR = {"succeeded": "green", "partial": "orange", "failed": "red", "running": "blue",
                "skipped": "gray"}


def _age(hours: float) -> str:
    if hours < 1:
        return f"{max(0, int(hours * 60))} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def status_row(c: Ctx, facts: SnapshotFacts, data: HomeData, view: LedgerView) -> None:
    now = datetime.now(UTC)
    left, mid, right = st.columns(3)
    with left.container(border=True):
        st.caption("Last sync (as recorded in the snapshot)")
        run = data.last_run
        if run is None:
            st.markdown("No run recorded yet.")
        else:
            status = str(run.get("status"))
            st.badge(status, color=STATUS_COLOR.get(status, "gray"))  # type: ignore[arg-type]
            ended = run.get("finished_at") or run.get("started_at")
            when = ended.astimezone(ZoneInfo(c.ui.timezone)).strftime("%Y-%m-%d %H:%M") \
                if isinstance(ended, datetime) else "–"
            st.markdown(f"Run **{run.get('id')}** ({run.get('trigger')}) at {when}")
            if run.get("error_summary"):
                st.caption(str(run["error_summary"])[:300])
    with mid.container(border=True):
        st.caption("Snapshot")
        stale = facts.stale(now, c.ui.stale_hours)
        age = _age(facts.age_hours(now))
        if stale:
            st.badge(f"stale: {age} old", color="red", icon=":material/schedule:")
            st.markdown(f":red[**{facts.name}** is older than {c.ui.stale_hours:g} h: "
                        "the last syncs did not publish.]")
        else:
            st.badge(f"fresh: {age} old", color="green", icon=":material/check_circle:")
            st.markdown(f"**{facts.name}**, {fmt_int(facts.rows)} features in "
                        f"{len(facts.groups)} groups")
    with right.container(border=True):
        st.caption("Open SLA violations")
        if view.sla is None:
            st.markdown("Not known: the ledger (PostgreSQL) is not reachable right now."
                        if view.error else "Checking the ledger…")
        elif not view.sla:
            st.badge("none open", color="green")
        else:
            st.badge(f"{len(view.sla)} open", color="red", icon=":material/warning:")
            for v in view.sla[:3]:
                st.markdown(f"**{v.sla_name}** since {v.opened_at:%Y-%m-%d %H:%M}: {v.detail}")


def cards(data: HomeData) -> None:
    labels = [w.label for w in data.windows]
    chosen = st.segmented_control("Period", labels, default="7 days", key=PERIOD_KEY,
                                  label_visibility="collapsed") or "7 days"
    window = next(w for w in data.windows if w.label == chosen)
    span = (f"{window.first:%Y-%m-%d}" if window.days == 1
            else f"{window.first:%Y-%m-%d} – {window.last:%Y-%m-%d}")
    cols = st.columns(len(COUNT_FIELDS))
    for col, name in zip(cols, COUNT_FIELDS, strict=True):
        now, before = window.totals[name], window.previous[name]
        col.metric(name.capitalize(), fmt_int(now), delta=now - before,
                   delta_color="inverse" if name == "errors" else "off", border=True,
                   help=f"{span}; change against the {window.days} day(s) before")
    rows = [{"period": w.label, "from": w.first, "to": w.last,
             **{k: w.totals[k] for k in COUNT_FIELDS}} for w in data.windows]
    with st.expander("All periods", expanded=False):
        st.dataframe(rows, hide_index=True, width="stretch")


def trend(data: HomeData) -> None:
    st.caption("Changes per day, last 30 days")
    frame = data.trend.to_pandas()
    st.bar_chart(frame, x="day", y=list(COUNT_FIELDS), height=220, x_label="", y_label="")


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
        rows = [{"day": d.day, "views": d.views, "users": d.clients} for d in summary.per_day]
        st.bar_chart(rows, x="day", y=["users"], height=160, x_label="", y_label="")


def page() -> None:
    c = ctx()
    st.title("FMW explorer")
    version = current_version(c)
    if version is None:
        return
    try:
        facts = snapshot_facts(c.engine, version)
        today = datetime.now(ZoneInfo(c.ui.timezone)).date()
        data = cache.home(c, version, today)
    except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
        show_error(exc, "Home")
        return
    rec = recorder(c.settings, c.ui)
    status_row(c, facts, data, rec.view)
    cards(data)
    trend(data)
    usage(c, rec)
