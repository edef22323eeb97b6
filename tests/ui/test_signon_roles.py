"""The explorer's role comes from the API's full role map (``GET /api/me``), a 401 there ends
the sign-in, and an API that cannot answer leaves the config's roles in force (issue 14).

The pure part (`me_answer`, `resolve_viewer`) is tested as data; the gate runs in AppTest
against a small local HTTP server standing in for ``/api/me`` (the edge of the world: the real
API answers in `test_signon_browser.py`). Also the Dev page's role-map grid as data.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from streamlit.testing.v1 import AppTest

from fmw.authconfig import AuthConfig, RoleRule
from query.scope import RowScope, ScopeRule
from tests.ui.conftest import UiEnv
from ui import context
from ui.access import (
    EXPIRED,
    EXPIRED_TEXT,
    NO_API_TEXT,
    NO_TOKEN_TEXT,
    MeAnswer,
    me_answer,
    resolve_viewer,
)
from ui.config import ui_config
from ui.dev import role_entries, role_frame
from ui.devapi import DevApiError

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"
ROLES = (RoleRule("fmw-admins", "admin"),
         RoleRule("fmw-ims", "scoped", feature_groups=("volte", "rcs"), mccs=("450",)))
AUTH = AuthConfig(mode="oidc", issuer="http://127.0.0.1:9", client_id="fmw-explorer",
                  client_secret="x", roles=ROLES)
#: Dan's group has no role in the config: only an entry stored through the Dev page maps it.
DAN = {"is_logged_in": True, "sub": "dan", "name": "Dan Claims", "groups": ["fmw-stored"]}
STORED_SCOPE = [{"feature_groups": ["rcs"], "mccs": ["310"]}]
ME_DAN = {"subject": "dan", "name": "Dan (from the API)", "role": "scoped",
          "scope": STORED_SCOPE, "via": "oidc"}


def problem(status: int, detail: str, kind: str = "") -> DevApiError:
    err = DevApiError(status, "Problem", detail)
    err.body = {"title": "Problem", "detail": detail, "kind": kind}  # type: ignore[attr-defined]
    return err


def answered(outcome: dict[str, Any] | DevApiError) -> MeAnswer:
    def call() -> dict[str, Any]:
        if isinstance(outcome, DevApiError):
            raise outcome
        return outcome
    return me_answer(call)


# --- the pure part ---------------------------------------------------------------------------

def test_the_apis_answer_decides_role_scope_and_name():
    config_only = resolve_viewer(AUTH, DAN)
    assert config_only.role is None  # the config alone does not know Dan's group
    v = resolve_viewer(AUTH, DAN, answered(ME_DAN))
    assert (v.signed_in, v.role, v.name, v.subject, v.roles_note) == (
        True, "scoped", "Dan (from the API)", "dan", "")
    assert v.scope == RowScope.of([ScopeRule.of(("rcs",), (), ("310",))])
    admin = resolve_viewer(AUTH, {**DAN, "groups": ["fmw-admins"]}, answered(
        {"subject": "dan", "name": "Dan", "role": "viewer", "scope": None, "via": "oidc"}))
    assert (admin.role, admin.scope) == ("viewer", None)  # the API's map wins over the config


def test_a_401_ends_the_sign_in():
    me = answered(problem(401, "token expired", "token-refused"))
    assert me == MeAnswer("expired", detail="token expired")
    v = resolve_viewer(AUTH, {**DAN, "groups": ["fmw-admins"]}, me)
    assert v == EXPIRED and not v.signed_in and v.expired and v.role is None
    assert not v.may_open("tokens") and not v.may_open("dev")


def test_a_role_refusal_is_the_no_role_page():
    me = answered(problem(403, "Dan: none of your groups has a role in FMW", "role-refused"))
    v = resolve_viewer(AUTH, DAN, me)
    assert (v.signed_in, v.role, v.scope, v.expired) == (True, None, None, False)


@pytest.mark.parametrize(("failure", "note"), [
    (problem(0, "http://127.0.0.1:1 did not answer"), NO_API_TEXT),
    (problem(500, "boom"), NO_API_TEXT),
    (problem(503, "the identity provider cannot be reached", "provider-unavailable"),
     NO_API_TEXT),
    (problem(403, "address 10.1.1.1 is not on the allow list", "address-not-allowed"),
     "Roles come from the config: the API refused (403 address 10.1.1.1 is not on the allow "
     "list)"),
])
def test_an_api_that_cannot_answer_leaves_the_configs_roles(failure: DevApiError, note: str):
    carol = {**DAN, "groups": ["fmw-ims", "fmw-stored"]}
    v = resolve_viewer(AUTH, carol, answered(failure))
    assert (v.role, v.roles_note) == ("scoped", note)
    assert v.scope == RowScope.of([ScopeRule.of(("volte", "rcs"), (), ("450",))])
    assert resolve_viewer(AUTH, DAN, answered(failure)).role is None  # never more


@pytest.mark.parametrize("body", [
    {"role": "scoped", "scope": None},  # scoped without a scope would be every row
    {"role": "viewer", "scope": STORED_SCOPE},
    {"role": "root", "scope": None},
    {"role": "scoped", "scope": "groups=rcs"},
])
def test_an_odd_answer_is_not_trusted(body: dict[str, Any]):
    me = answered({"subject": "dan", "name": "Dan", "via": "oidc", **body})
    assert me.outcome == "unavailable"
    assert resolve_viewer(AUTH, DAN, me).role is None


# --- the gate, with a stand-in for /api/me ----------------------------------------------------

class MeStub(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    body: ClassVar[dict[str, Any]] = ME_DAN
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        MeStub.seen.append(f"{self.path} {self.headers.get('Authorization')}")
        raw = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/problem+json" if self.status >= 400
                         else "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def me_api(ui_env: UiEnv) -> Iterator[type[MeStub]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MeStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    MeStub.status, MeStub.body, MeStub.seen = 200, ME_DAN, []
    settings = dataclasses.replace(ui_env.settings, auth=AUTH)
    context.use(settings, dataclasses.replace(
        ui_config(settings), api_url=f"http://127.0.0.1:{server.server_address[1]}"))
    yield MeStub
    context._injected = None
    server.shutdown()
    server.server_close()


def app(who: dict[str, object]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = dict(who)
    return at.run()


def sidebar_text(at: AppTest) -> str:
    return " ".join([m.value for m in at.sidebar.markdown] + [c.value for c in at.sidebar.caption])


def test_the_gate_takes_the_role_from_the_api_and_asks_once_a_minute(me_api: type[MeStub]):
    at = app({**DAN, "tokens": {"access": "access-token-1"}})
    assert not at.exception, at.exception
    side = sidebar_text(at)
    assert "Signed in as **Dan (from the API)** · scoped" in side
    assert "groups=rcs mccs=310" in side and "config" not in side
    assert me_api.seen == ["/api/me Bearer access-token-1"]
    at.run()
    assert len(me_api.seen) == 1  # kept in the session
    digest_only = str(at.session_state["fmw_me"])
    assert "access-token-1" not in digest_only


def test_an_expired_sign_in_shows_the_sign_in_page_and_nothing_else(me_api: type[MeStub]):
    me_api.status = 401
    me_api.body = {"title": "Unauthorized", "detail": "token expired", "kind": "token-refused"}
    at = app({**DAN, "groups": ["fmw-admins"], "tokens": {"access": "old-token"}})
    assert not at.exception
    assert [w.value for w in at.warning] == [EXPIRED_TEXT]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.metric and not at.dataframe and not at.sidebar.markdown


def test_without_the_api_or_an_access_token_the_config_decides_and_says_so(
        me_api: type[MeStub], ui_env: UiEnv):
    carol = {**DAN, "name": "Carol", "groups": ["fmw-ims"]}
    at = app(carol)  # no access token in the session
    assert "Signed in as **Carol** · scoped" in sidebar_text(at)
    assert NO_TOKEN_TEXT in sidebar_text(at) and me_api.seen == []
    settings = dataclasses.replace(ui_env.settings, auth=AUTH)
    context.use(settings, dataclasses.replace(ui_config(settings), api_url="http://127.0.0.1:1"))
    at = app({**carol, "tokens": {"access": "t"}})
    assert not at.exception
    assert "Signed in as **Carol** · scoped" in sidebar_text(at)
    assert NO_API_TEXT in sidebar_text(at)
    assert "Dan" not in sidebar_text(at)


# --- the Dev page's role-map grid -------------------------------------------------------------

def test_the_role_grid_round_trips_the_apis_entries():
    entries: list[dict[str, Any]] = [{"group": "fmw-ims", "role": "scoped", "feature_groups": ["rcs", "volte"],
                "mccs": ["450"]}, {"group": "fmw-ops", "role": "admin"}]
    frame = role_frame(entries)
    assert list(frame.columns) == ["group", "role", "feature_groups", "operators", "mccs"]
    assert frame.to_dict("records")[0] == {"group": "fmw-ims", "role": "scoped",
                                           "feature_groups": "rcs, volte", "operators": "",
                                           "mccs": "450"}
    assert role_entries(frame.to_dict("records")) == entries
    assert list(role_frame([]).columns) == list(frame.columns)  # "+" needs the columns


def test_blank_rows_are_dropped_and_half_filled_ones_go_to_the_api():
    rows: list[dict[str, Any]] = [{"group": None, "role": None, "feature_groups": None, "operators": None,
             "mccs": float("nan")},  # a new row left empty
            {"group": " ", "role": "scoped", "feature_groups": "", "operators": "", "mccs": "450"},
            {"group": "g", "role": "scoped", "feature_groups": " a ,, b ", "operators": None,
             "mccs": ""}]
    assert role_entries(rows) == [{"group": "", "role": "scoped", "mccs": ["450"]},
                                  {"group": "g", "role": "scoped", "feature_groups": ["a", "b"]}]
