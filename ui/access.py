"""Who is looking: the signed-in user, their role and row scope, and the gate every page
passes first.

With ``auth.mode = "allowlist"`` (the default) nobody signs in and the explorer is what it
always was: every page, every row (Nginx's allow list decides who reaches it). With
``auth.mode = "oidc"`` the explorer shows a sign-in page until the browser has signed in with
the provider (``st.login``). The role, row scope and name come from the API's ``GET /api/me``
called with the sign-in's access token, so the explorer uses the API's full role map (the
config's ``[[auth.roles]]`` plus the entries admins store in the Dev page); the answer is kept
in the session for `ME_CACHE_S`. A 401 there (the provider's access token expired) ends the
sign-in: the sign-in page again, which bounds Streamlit's 30-day sign-in cookie by the access
token's lifetime. When the API cannot answer (down, 5xx) or the sign-in carries no access
token, the config's roles alone decide (`query.scope.resolve_role`; a subset of the full map,
so never more) and the identity box says so. A user none of whose groups has a role sees a
message and a sign-out, nothing else.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import streamlit as st

from fmw.authconfig import ROLES, AuthConfig, Role
from query.scope import RowScope, resolve_role
from ui.devapi import DevApiError

#: Pages only some roles may open (a page not listed: every role). A scoped user's SQL page
#: reads views restricted to the scope (features, changes, mcc_mnc_map) and nothing else.
PAGE_ROLES: dict[str, tuple[Role, ...]] = {"dev": ("admin",)}
#: Pages that need a provider sign-in (no meaning in allowlist mode).
SIGNED_IN_PAGES = ("tokens",)
ROLE_TEXT = {"admin": "admin", "viewer": "viewer (all rows)", "scoped": "scoped"}
#: How long a session keeps the API's answer about its sign-in (seconds); a page reload is a
#: new session and asks again.
ME_CACHE_S = 60.0
ME_STATE = "fmw_me"
EXPIRED_TEXT = "Your sign-in has expired; sign in again."
NO_API_TEXT = "Roles come from the config: the API is not reachable"
NO_TOKEN_TEXT = "Roles come from the config: your sign-in carries no access token for the API"

MeOutcome = Literal["ok", "refused", "expired", "unavailable"]


@dataclass(frozen=True)
class MeAnswer:
    """What ``GET /api/me`` said about this sign-in.

    ``ok``: `body` is the answer (subject, name, role, scope, via); ``refused``: a 403, none
    of the user's groups has a role; ``expired``: a 401, the access token expired or is not
    valid; ``unavailable``: no answer to go by (API down, 5xx, no access token), `detail` says
    why.
    """

    outcome: MeOutcome
    body: Mapping[str, Any] | None = None
    detail: str = ""


def me_answer(call: Callable[[], Mapping[str, Any]]) -> MeAnswer:
    """Run `call` (``DevApi.me``) and sort its outcome.

    Only a 401 ends the sign-in and only a 403 naming the role map (``role-refused``) means no
    role; any other refusal (an address the API does not allow, a relay problem, sign-on off
    on the API's side) and an unreachable or failing API fall back to the config's roles.
    """
    try:
        body = call()
    except DevApiError as exc:
        kind = str((getattr(exc, "body", None) or {}).get("kind") or "")
        if exc.status == 401:
            return MeAnswer("expired", detail=exc.detail or exc.title)
        if exc.status == 403 and kind == "role-refused":
            return MeAnswer("refused", detail=exc.detail)
        if exc.status == 0 or exc.status >= 500:
            return MeAnswer("unavailable", detail=NO_API_TEXT)
        return MeAnswer("unavailable", detail=f"Roles come from the config: the API refused "
                                              f"({exc.status} {exc.detail or exc.title})")
    try:  # a 200 always has these; an odd answer must never widen what someone sees
        scope = RowScope.from_json(body.get("scope"))
        sane = body.get("role") in ROLES and (scope is not None) == (body["role"] == "scoped")
    except (AttributeError, TypeError, ValueError):
        sane = False
    if not sane:
        return MeAnswer("unavailable", detail=NO_API_TEXT)
    return MeAnswer("ok", body=body)


@dataclass(frozen=True)
class Viewer:
    """The person using the explorer.

    `signed_in` is a provider sign-in; `role` None with `signed_in` means none of their groups
    has a role. `scope` None: every row.
    """

    signed_in: bool
    name: str = ""
    role: Role | None = None
    scope: RowScope | None = None
    groups: tuple[str, ...] = ()
    #: The provider's subject (``sub``): who a download's audit row names.
    subject: str = ""
    #: Set when the role comes from the config alone (the API could not be asked): why.
    roles_note: str = ""
    #: The sign-in is no longer valid (the API answered 401): show the sign-in page again.
    expired: bool = False

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def scoped(self) -> bool:
        return self.scope is not None

    def may_open(self, page: str) -> bool:
        """Whether this person may open the page with this url path name."""
        if page in SIGNED_IN_PAGES:
            return self.signed_in and self.role is not None
        roles = PAGE_ROLES.get(page)
        return roles is None or self.role in roles

    def label(self) -> str:
        """``Alice Admin · admin``; a scoped role names what it sees."""
        role = ROLE_TEXT.get(str(self.role), str(self.role))
        if self.scope is not None:
            role += f" ({self.scope.text()})"
        return f"{self.name} · {role}"


#: Sign-on off: nobody signs in; the explorer shows everything, as before sign-on existed.
OPEN = Viewer(signed_in=False, name="", role="admin", scope=None)
SIGNED_OUT = Viewer(signed_in=False, role=None)
EXPIRED = Viewer(signed_in=False, role=None, expired=True)


def claim_list(value: Any) -> tuple[str, ...]:
    """A groups claim as names: a list, or one name (AD FS sends a single group as a string)."""
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if isinstance(v, str | int) and str(v).strip())
    return ()


def resolve_viewer(auth: AuthConfig, user: Mapping[str, Any],
                   me: MeAnswer | None = None) -> Viewer:
    """The viewer from ``st.user`` (the ID token's claims as a mapping) and the API's answer
    about the sign-in (`me_answer`).

    Args:
        auth: the ``[auth]`` settings (mode, claims, the config's roles).
        user: ``st.user`` as a mapping.
        me: what ``GET /api/me`` said; None: not asked (the config's roles, no note).

    Returns:
        `OPEN` with sign-on off, `SIGNED_OUT` before sign-in, `EXPIRED` after a 401; else the
        signed-in viewer, role None when none of their groups has one.
    """
    if not auth.oidc:
        return OPEN
    if not user.get("is_logged_in"):
        return SIGNED_OUT
    if me is not None and me.outcome == "expired":
        return EXPIRED
    groups = claim_list(user.get(auth.groups_claim))
    name = next((str(user[k]) for k in (auth.name_claim, "name", "email", "preferred_username",
                                         "upn", "sub") if user.get(k)), "signed-in user")
    subject = str(user.get("sub") or "")
    if me is not None and me.outcome == "refused":
        return Viewer(True, name, None, None, groups, subject)
    if me is not None and me.outcome == "ok" and me.body is not None:
        body = me.body
        return Viewer(True, str(body.get("name") or name), cast(Role, body["role"]),
                      RowScope.from_json(body.get("scope")), groups,
                      str(body.get("subject") or subject))
    role, scope = resolve_role(auth.roles, groups)
    return Viewer(True, name, role, scope, groups, subject,
                  roles_note=me.detail if me is not None else "")


#: Asks ``GET /api/me`` with an access token (`ui.context.me_lookup`).
MeLookup = Callable[[str], Mapping[str, Any]]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def session_me(lookup: MeLookup | None, clock: Callable[[], float] = time.monotonic
               ) -> MeAnswer:
    """The API's answer about this session's sign-in, asked at most every `ME_CACHE_S`
    seconds per access token (kept in ``st.session_state`` under the token's digest; the
    token itself is never stored there nor logged)."""
    token = access_token()
    if token is None:
        return MeAnswer("unavailable", detail=NO_TOKEN_TEXT)
    if lookup is None:
        return MeAnswer("unavailable", detail=NO_API_TEXT)
    digest, now = _digest(token), clock()
    kept = st.session_state.get(ME_STATE)
    if (isinstance(kept, tuple) and len(kept) == 3 and kept[0] == digest
            and now - kept[1] < ME_CACHE_S):
        return cast(MeAnswer, kept[2])
    answer = me_answer(lambda: lookup(token))
    st.session_state[ME_STATE] = (digest, now, answer)
    return answer


def current(auth: AuthConfig, lookup: MeLookup | None = None) -> Viewer:
    """This browser session's viewer (`lookup` asks the API about the sign-in)."""
    if not auth.oidc:
        return OPEN
    user = st.user.to_dict()
    if not user.get("is_logged_in"):
        return SIGNED_OUT
    return resolve_viewer(auth, user, session_me(lookup))


def access_token() -> str | None:
    """The provider's access token of this sign-in (``expose_tokens = ["access"]``)."""
    try:
        token = st.user.tokens["access"]
    except (KeyError, AttributeError):
        return None
    return str(token) if token else None


def sign_in_page(expired: bool = False) -> None:
    st.title("FMW explorer")
    if expired:
        st.warning(EXPIRED_TEXT, icon=":material/schedule:")
    st.markdown("Sign in with your company account to see the feature status.")
    if st.button("Sign in", type="primary", key="fmw_sign_in", icon=":material/login:"):
        st.login()


def no_role_page(viewer: Viewer) -> None:
    st.title("FMW explorer")
    st.warning(f"You are signed in as **{viewer.name}**, but none of your groups has access "
               "to FMW. Ask an FMW admin to add one of your groups to the explorer's roles.",
               icon=":material/block:")
    if viewer.groups:
        st.caption("Your groups: " + ", ".join(viewer.groups[:30]))
    if st.button("Sign out", key="fmw_sign_out_norole"):
        st.logout()


def identity_box(viewer: Viewer) -> None:
    """The sidebar's "Signed in as NAME · role" and the sign-out."""
    box = st.sidebar.container(border=True)
    box.markdown(f"Signed in as **{viewer.name}** · {ROLE_TEXT.get(str(viewer.role))}")
    if viewer.scope is not None:
        box.caption(f"You see the rows of: {viewer.scope.text()}")
    if viewer.roles_note:
        box.caption(viewer.roles_note + ".")
    if box.button("Sign out", key="fmw_sign_out", icon=":material/logout:", width="stretch"):
        st.logout()  # the browser goes to the provider's sign-out: draw nothing more
        st.stop()


def gate(auth: AuthConfig, lookup: MeLookup | None = None) -> Viewer:
    """Draw the sign-in page (not signed in, or the sign-in expired) or the no-access message
    (no role) and stop the run; else draw who is signed in and return the viewer."""
    viewer = current(auth, lookup)
    if not auth.oidc:
        return viewer
    if not viewer.signed_in:
        sign_in_page(expired=viewer.expired)
        st.stop()
    if viewer.role is None:
        no_role_page(viewer)
        st.stop()
    identity_box(viewer)
    return viewer


def refused(title: str, needed: str = "admins") -> None:
    """What a page shows to someone whose role may not open it (a direct URL)."""
    st.title(title)
    st.error(f"This page is for {needed} only.", icon=":material/lock:")
