"""Dev (admins): the admin's credential first; then sync, runs with quarantined rows, allow
list and (sign-on) the role map.

Everything here goes through the HTTP dev API (`ui.devapi`), which checks the credential and
the address on every call. With ``auth.mode = "oidc"`` an admin's own sign-in is the credential
(their provider access token); otherwise, or when the API refuses that token, an admin API
key, kept only in this browser session's state. Without a valid credential the page shows the
key form and nothing else.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

import fmw.relay as relay
from ui import access, timefmt
from ui.context import Ctx, client_address, ctx
from ui.devapi import DevApi, DevApiError
from ui.widgets import selected_row, table_height

KEY = "dev_key"
#: The sign-in the API refused for the dev API: (digest of the access token, the reason).
TOKEN_REFUSED = "dev_token_refused"
FOLLOW = "dev_follow_run"
DONE = "dev_follow_done"
ROLES = ["user", "admin"]
ALLOW_COLUMNS = ["cidr", "role", "note"]
TIME_FIELDS = ("started_at", "finished_at", "created_at", "quarantined_at", "at")
#: Text columns whose missing value shows empty (the grid would write "None").
EMPTY_AS_TEXT = ("error_summary", "finished_at", "trigger", "reason", "note")
ROLE_NAMES = ["viewer", "scoped", "admin"]
DIMENSIONS = ("feature_groups", "operators", "mccs")
ROLE_COLUMNS = ["group", "role", *DIMENSIONS]


def allow_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """The allow list for the editor. Always with its three columns: an editor given no
    columns has no "add row" button, so the first entry could not be added."""
    return pd.DataFrame([{c: e.get(c) or ("user" if c == "role" else "") for c in ALLOW_COLUMNS}
                         for e in entries], columns=ALLOW_COLUMNS).astype(str)


def _client_api(base_url: str, key: str) -> DevApi:
    """The dev API on behalf of the person at this browser: the API checks, rate-limits and
    audits their address, not the explorer's own (fmw.relay)."""
    settings = ctx().settings
    return DevApi(base_url, key, client=client_address(),
                  relay_key=relay.load_key(settings.data_dir))


def _api() -> DevApi | None:
    key = st.session_state.get(KEY)
    if not key:
        return None
    return _client_api(ctx().ui.api_url, str(key))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _sign_in_api(c: Ctx) -> DevApi | None:
    """The admin's own sign-in as the dev API credential (sign-on), unless there is no
    access token or the API already refused this one."""
    if not (c.settings.auth.oidc and c.viewer.signed_in and c.viewer.admin):
        return None
    token = access.access_token()
    if token is None:
        return None
    refused = st.session_state.get(TOKEN_REFUSED)
    if isinstance(refused, tuple) and refused[0] == _digest(token):
        return None
    return _client_api(c.ui.api_url, token)


def _refuse_sign_in(exc: DevApiError) -> None:
    token = access.access_token()
    if token is not None:
        st.session_state[TOKEN_REFUSED] = (_digest(token), exc.detail or exc.title)


def _unlock(base_url: str) -> None:
    secret = str(st.session_state.get("dev_key_input") or "").strip()
    st.session_state["dev_key_input"] = ""
    if not secret:
        st.session_state["dev_key_error"] = "Enter the admin API key."
        return
    try:
        _client_api(base_url, secret).check()
    except DevApiError as exc:
        st.session_state["dev_key_error"] = (
            "This key is not valid (unknown or revoked)." if exc.bad_key else str(exc))
        return
    st.session_state[KEY] = secret
    st.session_state.pop("dev_key_error", None)


def _lock() -> None:
    for k in (KEY, FOLLOW, DONE):
        st.session_state.pop(k, None)


def key_form(base_url: str) -> None:
    refused = st.session_state.get(TOKEN_REFUSED)
    if isinstance(refused, tuple) and _api() is None:
        st.info(f"The dev API did not accept your sign-in ({refused[1]}); enter an admin API "
                "key instead.", icon=":material/key_off:")
    st.markdown("The Dev page is for administrators. Enter an admin API key "
                "(created with `fmw apikey create NAME`); it is kept only in this browser "
                "tab's session.")
    with st.form("dev_key_form", clear_on_submit=False, border=True, width=480):
        st.text_input("Admin API key", type="password", key="dev_key_input",
                      autocomplete="off")
        st.form_submit_button("Unlock", on_click=_unlock, args=(base_url,), type="primary")
    if st.session_state.get("dev_key_error"):
        st.error(st.session_state["dev_key_error"], icon=":material/key_off:")


def _cell(k: str, v: Any, tz: str) -> Any:
    if v is None and k in EMPTY_AS_TEXT:
        return ""
    if isinstance(v, list):
        return ", ".join(map(str, v))
    if isinstance(v, dict):
        return str(v)
    if k in TIME_FIELDS and isinstance(v, str) and v:
        return timefmt.fmt(v, tz)
    return v


def _table(rows: list[dict[str, Any]], tz: str = "UTC") -> list[dict[str, Any]]:
    """Lists and objects as text, so the grid shows every column; times (ISO text from the
    API) in the configured zone."""
    return [{k: _cell(k, v, tz) for k, v in r.items()} for r in rows]


def show_run(api: DevApi, run_id: int) -> dict[str, Any] | None:
    """A run's status and counts; None when it cannot be read."""
    try:
        run = api.run(run_id, errors_limit=0)
    except DevApiError as exc:
        st.error(str(exc))
        return None
    status = str(run.get("status"))
    running = bool(run.get("running"))
    st.markdown(f"**Run {run_id}**: {status}" + (" …" if running else ""))
    cols = st.columns(5)
    for col, name in zip(cols, ("rows_read", "created", "updated", "deleted", "rows_bad"),
                         strict=True):
        col.metric(name.replace("_", " "), f"{int(run.get(name) or 0):,}")
    phases = run.get("phase_seconds") or {}
    if phases:
        st.caption("Phases: " + ", ".join(f"{k} {float(v):.1f} s" for k, v in phases.items()))
    st.caption(f"started {timefmt.fmt(run.get('started_at'), ctx().ui.timezone, '')} "
               f"({timefmt.offset(ctx().ui.timezone)})")
    if not running:
        if status in ("succeeded", "partial"):
            st.success(f"Run {run_id} {status}. The new snapshot shows on every page once it "
                       "is published.", icon=":material/check_circle:")
        else:
            st.error(f"Run {run_id} {status}: {run.get('error_summary') or 'see Runs'}")
    return run


@st.fragment(run_every=1.0)
def follow(api: DevApi, run_id: int) -> None:
    """The followed run, refreshed every second; when it ends, the page reruns once to stop
    refreshing and keeps showing the final state."""
    run = show_run(api, run_id)
    if run is not None and not run.get("running"):
        st.session_state[DONE] = True
        st.rerun()


def sync_tab(api: DevApi) -> None:
    if st.button("Run sync now", type="primary", icon=":material/sync:"):
        try:
            started = api.start_sync()
            st.session_state[FOLLOW] = int(started["run_id"])
            st.session_state[DONE] = False
        except DevApiError as exc:
            body = getattr(exc, "body", {}) or {}
            if exc.status == 409 and body.get("run_id"):
                st.session_state[FOLLOW] = int(body["run_id"])
                st.session_state[DONE] = False
                st.info(f"A sync is already running (run {body['run_id']}); following it.")
            else:
                st.error(str(exc))
    run_id = st.session_state.get(FOLLOW)
    if run_id and st.session_state.get(DONE):
        show_run(api, int(run_id))
    elif run_id:
        follow(api, int(run_id))
    else:
        st.caption("Starts one sync of every configured source and publishes a snapshot "
                   "when it applies; its progress shows here.")


def runs_tab(api: DevApi) -> None:
    try:
        runs = api.runs(50)
    except DevApiError as exc:
        st.error(str(exc))
        return
    if not runs:
        st.info("No runs yet.")
        return
    shown = ["id", "status", "trigger", "started_at", "finished_at", "rows_read", "created",
             "updated", "deleted", "rows_bad", "conflicts", "error_summary"]
    rows = [{k: r.get(k) for k in shown if k in r} for r in runs]
    tz = ctx().ui.timezone
    st.caption(timefmt.caption(tz))
    picked = st.dataframe(_table(rows, tz), hide_index=True, on_select="rerun",
                          selection_mode="single-row", key="dev_runs",
                          height=table_height(len(rows), 420),
                          width="stretch", column_config={
                              k: st.column_config.TextColumn(timefmt.header(k, tz))
                              for k in ("started_at", "finished_at")})
    run_id = int(str(rows[selected_row(picked) or 0]["id"]))
    try:
        detail = api.run(run_id)
    except DevApiError as exc:
        st.error(str(exc))
        return
    q = detail.get("quarantined") or []
    st.markdown(f"**Run {run_id}** · {detail.get('status')} · {len(q)} quarantined row(s)")
    if detail.get("error_summary"):
        st.caption(str(detail["error_summary"]))
    if q:
        st.dataframe(_table(q, tz), hide_index=True, width="stretch", height=240)


def allow_tab(api: DevApi) -> None:
    try:
        current = api.allow_list()
    except DevApiError as exc:
        st.error(str(exc))
        return
    st.caption("Who may use the API: networks (CIDR) and their role. "
               + ("Loopback (this machine) is always admin. "
                  if current.get("loopback_allowed") else ""))
    entries = allow_frame(list(current.get("entries", [])))
    if entries.empty:
        st.info("The allow list is empty: add the first network with **+** at the top right "
                "of the table, then save.", icon=":material/playlist_add:")
    edited = st.data_editor(
        entries, num_rows="dynamic", hide_index=True,
        key="dev_allow_editor", width="stretch", column_config={
            "cidr": st.column_config.TextColumn("CIDR", required=True,
                                                help="e.g. 10.20.0.0/16 or 10.20.1.5"),
            "role": st.column_config.SelectboxColumn("Role", options=ROLES, required=True,
                                                     default="user"),
            "note": st.column_config.TextColumn("Note", max_chars=500),
        })
    if st.button("Save allow list", type="primary", icon=":material/save:"):
        rows = [{"cidr": str(r.get("cidr") or "").strip(), "role": str(r.get("role") or "user"),
                 "note": str(r.get("note") or "")} for r in _records(edited)]
        try:
            saved = api.put_allow_list([r for r in rows if r["cidr"]])
        except DevApiError as exc:
            st.error(f"Not saved: {exc.detail or exc}", icon=":material/error:")
            return
        st.success(f"Saved: {len(saved.get('entries', []))} entries, in force now.")


def _text(value: Any) -> str:
    """A cell as text: an empty new cell is None (or NaN in a frame), shown and read as ""."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value).strip()


def role_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """Role-map entries for the grid: one row each, the three dimensions as comma-separated
    text; always with every column (an editor without columns cannot add a row)."""
    return pd.DataFrame([{"group": _text(e.get("group")), "role": _text(e.get("role")) or "viewer",
                          **{d: _text(e.get(d)) for d in DIMENSIONS}} for e in entries],
                        columns=ROLE_COLUMNS).astype(str)


def role_entries(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grid's rows as the API's entries ``{group, role, feature_groups?, operators?,
    mccs?}``. Only blank rows are dropped: a half-filled one goes to the API, whose 400
    names what is wrong with it."""
    out: list[dict[str, Any]] = []
    for r in records:
        cells = {k: _text(r.get(k)) for k in ROLE_COLUMNS}
        if not (cells["group"] or any(cells[d] for d in DIMENSIONS)):
            continue
        entry: dict[str, Any] = {"group": cells["group"], "role": cells["role"] or "viewer"}
        for d in DIMENSIONS:
            values = [v.strip() for v in cells[d].split(",") if v.strip()]
            if values:
                entry[d] = values
        out.append(entry)
    return out


def roles_tab(api: DevApi) -> None:
    try:
        current = api.roles()
    except DevApiError as exc:
        st.error(str(exc))
        return
    st.caption("Which provider groups get which role. A scoped role sees only the rows of its "
               "feature groups AND operators AND MCCs (comma-separated; empty: any). Saved "
               "entries apply in the API at once and in the explorer within a minute (at once "
               "after a reload).")
    if current.get("last_error"):
        st.warning(f"The API could not reload the stored entries and keeps its last good copy: "
                   f"{current['last_error']}", icon=":material/warning:")
    config = list(current.get("config") or [])
    if config:
        st.markdown("**From the config** (`[[auth.roles]]`, read-only: change them in the "
                    "config file)")
        st.dataframe(role_frame(config), hide_index=True, width="stretch",
                     key="dev_roles_config", height=table_height(len(config), 240))
    st.markdown("**Stored entries** (add with **+**, edit, then save)")
    edited = st.data_editor(
        role_frame(list(current.get("entries") or [])), num_rows="dynamic", hide_index=True,
        key="dev_roles_editor", width="stretch", column_config={
            "group": st.column_config.TextColumn("Group", required=True, max_chars=256,
                                                 help="the group name exactly as the "
                                                      "provider sends it"),
            "role": st.column_config.SelectboxColumn("Role", options=ROLE_NAMES,
                                                     required=True, default="viewer"),
            "feature_groups": st.column_config.TextColumn(
                "Feature groups", help="scoped only, e.g. volte, rcs"),
            "operators": st.column_config.TextColumn("Operators", help="scoped only"),
            "mccs": st.column_config.TextColumn("MCCs", help="scoped only, e.g. 450, 310"),
        })
    if st.button("Save role map", type="primary", icon=":material/save:", key="dev_roles_save"):
        try:
            saved = api.put_roles(role_entries(_records(edited)))
        except DevApiError as exc:
            st.error(f"Not saved: {exc.detail or exc}", icon=":material/error:")
            return
        st.success(f"Saved: {len(saved.get('entries', []))} stored entries, in force now.")


def _records(edited: Any) -> list[dict[str, Any]]:
    if isinstance(edited, list):
        return [dict(r) for r in edited]
    to_dict = getattr(edited, "to_dict", None)
    return list(to_dict("records")) if to_dict else []


def page() -> None:
    c = ctx()
    if not c.viewer.may_open("dev"):  # the navigation hides it; a direct URL ends here
        access.refused("Dev", "admins")
        return
    st.title("Dev")
    api = _api()
    signed_in = False
    if api is None:
        api = _sign_in_api(c)
        signed_in = api is not None
    if api is None:
        key_form(c.ui.api_url)
        return
    if signed_in:
        st.caption(f"Admin session with your sign-in ({c.viewer.name}) · dev API at "
                   f"{c.ui.api_url}")
    else:
        top, lock = st.columns([6, 1], vertical_alignment="center")
        top.caption(f"Admin session · dev API at {c.ui.api_url}")
        lock.button("Lock", on_click=_lock, icon=":material/lock:", width="stretch")
    try:
        api.check()
    except DevApiError as exc:
        if signed_in and exc.status in (401, 403):
            _refuse_sign_in(exc)  # the key form, as without sign-on
            key_form(c.ui.api_url)
        elif exc.bad_key:
            _lock()
            st.error("The key is no longer valid; enter it again.")
            key_form(c.ui.api_url)
        else:
            st.error(str(exc))
        return
    names = ["Sync", "Runs", "Allow list"] + (["Roles"] if c.settings.auth.oidc else [])
    tabs = st.tabs(names)
    with tabs[0]:
        sync_tab(api)
    with tabs[1]:
        runs_tab(api)
    with tabs[2]:
        allow_tab(api)
    if c.settings.auth.oidc:
        with tabs[3]:
            roles_tab(api)
