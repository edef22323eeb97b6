"""The explorer's sign-in plan (issue 14), tested as data, and the role gate.

The plan is what `fmw ui` hands Streamlit for ``st.login``: a secrets file with an ``[auth]``
section, a flag pointing at it and the provider's CA bundle. Streamlit's own parser and its
own credential check read the file we write.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
from pathlib import Path

import pytest

from fmw.authconfig import AuthConfig, RoleRule
from fmw.errors import ConfigError
from fmw.settings import Settings
from query.scope import RowScope, ScopeRule
from ui import signon
from ui.access import OPEN, SIGNED_OUT, Viewer, claim_list, resolve_viewer
from ui.config import UiConfig
from ui.launch import child_environment, streamlit_command
from ui.navigation import plan_pages

ROLES = (RoleRule("fmw-admins", "admin"), RoleRule("fmw-readers", "viewer"),
         RoleRule("fmw-ims", "scoped", feature_groups=("volte", "rcs"), mccs=("450",)),
         RoleRule("fmw-us", "scoped", operators=("T-Mobile",)))
AUTH = AuthConfig(mode="oidc", issuer="https://adfs.corp.test/adfs", client_id="fmw-explorer",
                  client_secret="s3cret \"quoted\" \\ ü", audience="fmw-api", roles=ROLES,
                  redirect_uri="https://fmw.corp.test/streamlit/oauth2callback")
UI = UiConfig(port=8599, base_url_path="streamlit")


def settings(tmp_path: Path, **auth: object) -> Settings:
    return Settings(data_dir=tmp_path, auth=dataclasses.replace(AUTH, **auth))  # type: ignore[arg-type]


def test_the_plan_is_streamlits_auth_section(tmp_path: Path):
    plan = signon.plan_signon(settings(tmp_path), UI, "c" * 64)
    assert plan is not None
    assert plan.auth == {
        "redirect_uri": "https://fmw.corp.test/streamlit/oauth2callback",
        "cookie_secret": "c" * 64,
        "client_id": "fmw-explorer",
        "client_secret": "s3cret \"quoted\" \\ ü",
        "server_metadata_url": "https://adfs.corp.test/adfs/.well-known/openid-configuration",
        "expose_tokens": ["access"],
        "client_kwargs": {"scope": "openid profile email"},
    }
    assert tomllib.loads(plan.text()) == {"auth": plan.auth}
    assert plan.secrets_file == tmp_path / "secrets" / "streamlit-auth.toml"
    assert plan.flags == [f"--secrets.files={tmp_path / 'secrets' / 'streamlit-auth.toml'}"]
    assert plan.env == {}
    assert "s3cret" not in repr(plan)  # a logged plan shows no secret


def test_sign_on_off_plans_nothing_and_the_command_is_as_before(tmp_path: Path):
    s = settings(tmp_path, mode="allowlist")
    assert signon.plan_signon(s, UI, "c" * 64) is None
    assert not any("secrets" in a for a in streamlit_command(s, UI))
    assert "SSL_CERT_FILE" not in child_environment(s, {})


def test_the_command_and_environment_carry_the_plan(tmp_path: Path):
    ca = tmp_path / "company-ca.pem"
    s = settings(tmp_path, ca_file=ca)
    plan = signon.plan_signon(s, UI, "c" * 64)
    assert plan is not None
    cmd = streamlit_command(s, UI, signon=plan)
    assert cmd.index(plan.flags[0]) < cmd.index("--")  # a Streamlit option, not a script arg
    env = child_environment(s, {"PATH": "/bin"}, plan)
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == str(ca)
    assert all("s3cret" not in a for a in cmd) and "s3cret" not in str(env)


@pytest.mark.parametrize(("offered", "scope"), [
    (None, "openid profile email"),  # discovery not readable: the configured scopes
    (["openid", "profile", "email"], "openid profile email"),  # AD FS / Entra: no such scope
    (["openid", "profile", "email", "groups"], "openid profile email groups"),
])
def test_the_groups_scope_is_asked_for_when_the_provider_offers_it(tmp_path, offered, scope):
    plan = signon.plan_signon(settings(tmp_path), UI, "c" * 64, offered)
    assert plan is not None and plan.auth["client_kwargs"]["scope"] == scope


def test_without_a_redirect_uri_the_callback_is_the_explorers_own(tmp_path: Path):
    plan = signon.plan_signon(settings(tmp_path, redirect_uri=None), UI, "c" * 64)
    assert plan is not None
    assert plan.auth["redirect_uri"] == "http://127.0.0.1:8599/streamlit/oauth2callback"


@pytest.mark.parametrize(("change", "message"), [
    ({"client_secret": None}, "needs auth.client_secret"),
    ({"redirect_uri": "https://fmw.corp.test/oauth2callback"},
     "must end in /streamlit/oauth2callback"),
    ({"redirect_uri": "https://fmw.corp.test/streamlit/callback"}, "must end in"),
])
def test_a_plan_streamlit_could_not_use_is_refused(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        signon.plan_signon(settings(tmp_path, **change), UI, "c" * 64)


def test_the_files_are_owner_only_and_the_cookie_secret_survives_a_restart(tmp_path: Path):
    first = signon.cookie_secret(tmp_path)
    assert len(first) == 64 and signon.cookie_secret(tmp_path) == first
    plan = signon.plan_signon(settings(tmp_path), UI, first)
    assert plan is not None
    path = signon.write_signon(plan)
    assert tomllib.loads(path.read_text(encoding="utf-8"))["auth"]["cookie_secret"] == first
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "secrets" / "ui-cookie.key").stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    signon.write_signon(plan)  # rewritten at each start, still one file
    assert sorted(p.name for p in path.parent.iterdir()) == ["streamlit-auth.toml",
                                                            "ui-cookie.key"]


def test_streamlit_itself_accepts_the_written_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    from streamlit import config
    from streamlit.auth_util import get_expose_tokens_config, validate_auth_credentials
    from streamlit.runtime import secrets as st_secrets
    plan = signon.plan_signon(settings(tmp_path), UI, signon.cookie_secret(tmp_path))
    assert plan is not None
    path = signon.write_signon(plan)
    before = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(path)])
    fresh = st_secrets.Secrets()
    monkeypatch.setattr(st_secrets, "secrets_singleton", fresh)
    import streamlit.auth_util as auth_util
    monkeypatch.setattr(auth_util, "secrets_singleton", fresh)
    try:
        validate_auth_credentials("default")  # raises StreamlitAuthError when incomplete
        assert get_expose_tokens_config() == ["access"]
        assert fresh["auth"]["client_kwargs"]["scope"] == "openid profile email"
    finally:
        # the value before, not the option's default_val (None): a later st.user would fail
        # with "'NoneType' object is not iterable"
        config.set_option("secrets.files", before)


# --- the role gate ---------------------------------------------------------------------------

def user(**claims: object) -> dict[str, object]:
    return {"is_logged_in": True, "sub": "u1", **claims}


@pytest.mark.parametrize(("claims", "role", "scope"), [
    ({"groups": ["fmw-admins", "fmw-ims"]}, "admin", None),  # the highest role wins
    ({"groups": ["fmw-readers"]}, "viewer", None),
    ({"groups": ["fmw-ims", "other"]}, "scoped",
     RowScope.of([ScopeRule.of(("volte", "rcs"), (), ("450",))])),
    ({"groups": ["fmw-ims", "fmw-us"]}, "scoped",  # two scoped groups add up
     RowScope.of([ScopeRule.of(("volte", "rcs"), (), ("450",)),
                  ScopeRule.of((), ("T-Mobile",), ())])),
    ({"groups": "fmw-readers"}, "viewer", None),  # one group sent as a string (AD FS)
    ({"groups": ["FMW-ADMINS"]}, None, None),  # exact names only
    ({"groups": []}, None, None),
    ({}, None, None),
])
def test_the_role_comes_from_the_groups_claim(claims, role, scope):
    v = resolve_viewer(AUTH, user(name="Ann", **claims))
    assert (v.signed_in, v.name, v.role, v.scope) == (True, "Ann", role, scope)


def test_the_configured_claims_are_read_and_the_name_falls_back():
    auth = dataclasses.replace(AUTH, groups_claim="roles", name_claim="upn")
    v = resolve_viewer(auth, user(upn="ann@corp", name="Ann", roles=["fmw-readers"],
                                  groups=["fmw-admins"]))
    assert (v.name, v.role) == ("ann@corp", "viewer")
    assert resolve_viewer(AUTH, user(email="bo@corp", groups=["fmw-readers"])).name == "bo@corp"
    assert resolve_viewer(AUTH, user(groups=["fmw-readers"])).name == "u1"


def test_signed_out_and_sign_on_off():
    assert resolve_viewer(AUTH, {"is_logged_in": False, "groups": ["fmw-admins"]}) == SIGNED_OUT
    assert resolve_viewer(AUTH, {}) == SIGNED_OUT
    off = dataclasses.replace(AUTH, mode="allowlist")
    assert resolve_viewer(off, {}) == OPEN and OPEN.admin and OPEN.scope is None
    assert claim_list(["a", "", 3, None, {"x": 1}]) == ("a", "3")


def nav(viewer: Viewer, oidc: bool = True) -> dict[str, bool]:
    return {p.name: shown for p, shown in plan_pages(viewer, oidc)}


def test_the_navigation_per_role():
    scoped = resolve_viewer(AUTH, user(groups=["fmw-ims"]))
    viewer = resolve_viewer(AUTH, user(groups=["fmw-readers"]))
    admin = resolve_viewer(AUTH, user(groups=["fmw-admins"]))
    data = {"": True, "overview": True, "feature": True, "history": True}
    assert nav(scoped) == {**data, "sql": True, "dev": False, "tokens": True}
    assert nav(viewer) == {**data, "sql": True, "dev": False, "tokens": True}
    assert nav(admin) == {**data, "sql": True, "dev": True, "tokens": True}
    # sign-on off: the pages of before, no tokens page
    assert nav(OPEN, oidc=False) == {**data, "sql": True, "dev": True}
    assert scoped.label() == "u1 · scoped (groups=rcs,volte mccs=450)"


def test_the_child_gets_the_auth_settings_without_the_client_secret(tmp_path: Path):
    from ui.context import parse_argv
    s = settings(tmp_path, ca_file=tmp_path / "ca.pem")
    cmd = streamlit_command(s, UI)
    given = cmd[cmd.index("--auth-config") + 1]
    assert "s3cret" not in " ".join(cmd)
    assert signon.auth_from_json(given) == dataclasses.replace(s.auth, client_secret=None)
    child, _ = parse_argv(cmd[cmd.index("--") + 1:])
    assert child.auth.roles == ROLES and child.auth.oidc
    assert "--auth-config" not in streamlit_command(settings(tmp_path, mode="allowlist"), UI)
    with pytest.raises(ConfigError, match="bad sign-on configuration"):
        signon.auth_from_json('{"mode": "oidc"}')
