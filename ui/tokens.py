"""API tokens (signed-in users): my personal tokens for programs that call the v1 API.

Everything goes through the API's ``/api/me/tokens`` with the user's provider access token
(``st.user.tokens["access"]``), relayed with the browser's address like the Dev page's calls:
the API decides, audits and stores (only a hash). A new token's secret is shown once.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

import fmw.relay as relay
from ui import access, timefmt
from ui.context import Ctx, client_address, ctx
from ui.devapi import DevApi, DevApiError
from ui.widgets import table_height

NEW = "tk_new_secret"
NOTICE = "tk_notice"
COLUMNS = ("prefix", "name", "role", "created_at", "expires_at", "last_used_at", "revoked_at")
DEFAULT_DAYS = 90


def _api(c: Ctx, token: str) -> DevApi:
    return DevApi(c.ui.api_url, token, client=client_address(),
                  relay_key=relay.load_key(c.settings.data_dir))


def _problem(exc: DevApiError, what: str) -> None:
    if exc.status == 401:
        st.error(f"{what}: the API did not accept your sign-in ({exc.detail or exc.title}). "
                 "Sign out and sign in again.", icon=":material/key_off:")
    else:
        st.error(f"{what}: {exc}", icon=":material/error:")


TIMES = ("created_at", "expires_at", "last_used_at", "revoked_at")


def token_frame(tokens: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    """Active tokens first, newest first, in the columns the page shows, times in `tz`."""
    ordered = sorted(tokens, key=lambda t: str(t.get("created_at") or ""), reverse=True)
    ordered.sort(key=lambda t: t.get("revoked_at") is not None)
    return pd.DataFrame([{k: (timefmt.fmt(t.get(k), tz, empty="") if k in TIMES else t.get(k))
                          for k in COLUMNS} for t in ordered], columns=list(COLUMNS))


def _show_new() -> None:
    made = st.session_state.pop(NEW, None)  # shown on this run only: never again
    if not made:
        return
    st.success(f"Token **{made.get('name')}** made (prefix `{made.get('prefix')}`), valid "
               f"until {made.get('expires_at')}. Copy it now: it is shown only this once, "
               "and FMW keeps only its hash.", icon=":material/key:")
    st.code(str(made.get("token")), language=None, wrap_lines=True)
    st.caption("Copy with the icon at the right of the box. Programs send it as "
               "`Authorization: Bearer <token>` to the v1 API.")


def _make(c: Ctx, api: DevApi) -> None:
    with st.form("tk_make", clear_on_submit=True, border=True):
        st.markdown("**New token**")
        left, right = st.columns([3, 1])
        name = left.text_input("Name", placeholder="what it is for, e.g. nightly report",
                               max_chars=100)
        days = right.number_input("Valid for (days)", min_value=1,
                                  max_value=c.settings.auth.token_max_days,
                                  value=min(DEFAULT_DAYS, c.settings.auth.token_max_days))
        if st.form_submit_button("Make token", type="primary"):
            if not name.strip():
                st.error("Give the token a name.")
                return
            try:
                st.session_state[NEW] = api.make_token(name.strip(), int(days))
            except DevApiError as exc:
                _problem(exc, "The token could not be made")
                return
            st.rerun()


def _revoke(api: DevApi, frame: pd.DataFrame) -> None:
    active = frame[frame["revoked_at"] == ""]
    if active.empty:
        return
    labels = {f"{r.prefix} · {r.name}": str(r.prefix) for r in active.itertuples()}
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    picked = left.selectbox("Revoke a token", list(labels), index=None,
                            placeholder="pick a token", key="tk_revoke_pick")
    if right.button("Revoke", disabled=picked is None, key="tk_revoke"):
        try:
            gone = api.revoke_token(labels[str(picked)])
        except DevApiError as exc:
            _problem(exc, "The token could not be revoked")
            return
        st.session_state[NOTICE] = f"Token {gone.get('prefix')} revoked: it no longer works."
        st.rerun()


def page() -> None:
    c = ctx()
    st.title("API tokens")
    if not c.viewer.signed_in:
        st.info("API tokens need sign-in with the company account (auth.mode = 'oidc').")
        return
    token = access.access_token()
    if token is None:
        st.error("Your sign-in carries no access token for the API. Sign out and in again; "
                 "if this stays, ask an admin to check the explorer's sign-in settings.")
        return
    api = _api(c, token)
    st.caption("Personal tokens let your programs read the v1 API as you: "
               f"{access.ROLE_TEXT.get(str(c.viewer.role))}"
               + (f", rows of {c.scope.text()}" if c.scope is not None else "")
               + ". They only read; revoke one as soon as it is not needed.")
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.info(notice, icon=":material/key_off:")
    _show_new()
    _make(c, api)
    try:
        tokens = api.my_tokens()
    except DevApiError as exc:
        _problem(exc, "Your tokens cannot be listed")
        return
    if not tokens:
        st.info("You have no tokens yet.")
        return
    tz = c.ui.timezone
    frame = token_frame(tokens, tz)
    st.caption(f"{len(frame)} token(s) · {timefmt.caption(tz)}")
    st.dataframe(frame, hide_index=True, width="stretch", key="tk_table",
                 height=table_height(len(frame), 320))
    _revoke(api, frame)
