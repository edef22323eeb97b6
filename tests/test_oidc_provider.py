"""The OIDC test provider (`tests/oidc_provider.py`) is a real one: discovery, JWKS, login, rotation.

The fixtures here show how other tests use it: `oidc_provider_factory` starts providers (stopped at
the end of the session), `oidc_provider` is one shared provider with the users and clients below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from tests.oidc_provider import Provider

USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "alice-pw", "name": "Alice Admin", "email": "alice@fmw.test",
              "groups": ["fmw-admins", "fmw-readers"]},
    "bob": {"password": "bob-pw", "name": "Bob Reader", "email": "bob@fmw.test",
            "groups": ["fmw-readers"]},
}
REDIRECT_URI = "https://127.0.0.1:8443/streamlit/oauth2callback"
CLIENTS = [{"client_id": "fmw-explorer", "client_secret": "explorer-secret",
            "redirect_uris": [REDIRECT_URI, "http://127.0.0.1:8501/oauth2callback"]}]


@pytest.fixture(scope="session")
def oidc_provider_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Provider]]:
    """Start a provider with `Provider.start`'s arguments (USERS and CLIENTS by default)."""
    started: list[Provider] = []

    def start(**kwargs: Any) -> Provider:
        kwargs = {"users": USERS, "clients": CLIENTS} | kwargs
        idp = Provider.start(tmp_path_factory.mktemp("idp"), **kwargs)
        started.append(idp)
        return idp

    yield start
    for idp in started:
        idp.stop()


@pytest.fixture(scope="session")
def oidc_provider(oidc_provider_factory: Callable[..., Provider]) -> Provider:
    """One provider for the session; a test that restarts it makes its own instead."""
    return oidc_provider_factory()


def login(idp: Provider, user: str, password: str | None = None, **params: Any) -> dict[str, Any]:
    password = USERS[user]["password"] if password is None else password
    return idp.login(user, password, "fmw-explorer", "explorer-secret", REDIRECT_URI, **params)


def verify(idp: Provider, token: str, audience: str) -> dict[str, Any]:
    """Validate a token as a relying party does: discovery, then the JWKS."""
    jwks = jwt.PyJWKClient(idp.metadata["jwks_uri"], cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=audience,
                                        issuer=idp.issuer)
    return claims


def test_discovery_and_jwks_are_served(oidc_provider: Provider) -> None:
    meta = requests.get(oidc_provider.metadata_url, timeout=5).json()
    assert meta["issuer"] == oidc_provider.issuer
    assert "groups" in meta["scopes_supported"]
    assert meta["end_session_endpoint"].startswith(oidc_provider.issuer)
    assert "S256" in meta["code_challenge_methods_supported"]
    keys = requests.get(meta["jwks_uri"], timeout=5).json()["keys"]
    assert [k["kid"] for k in keys] == [k["kid"] for k in oidc_provider.private_keys]
    assert all("d" not in k for k in keys), "the JWKS must publish public keys only"


def test_login_yields_a_jwt_access_token_for_the_api(oidc_provider: Provider) -> None:
    tokens = login(oidc_provider, "alice")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    claims = verify(oidc_provider, tokens["access_token"], audience="fmw-api")
    assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"
    assert claims["sub"] == "alice"
    assert claims["name"] == "Alice Admin"
    assert claims["groups"] == ["fmw-admins", "fmw-readers"]
    assert claims["client_id"] == "fmw-explorer"
    assert set(claims["scope"].split()) == {"openid", "profile", "email", "groups"}
    assert claims["exp"] > claims["iat"]


def test_id_token_carries_name_email_and_groups(oidc_provider: Provider) -> None:
    tokens = login(oidc_provider, "bob", scope="openid profile email groups")
    claims = verify(oidc_provider, tokens["id_token"], audience="fmw-explorer")
    assert (claims["sub"], claims["name"], claims["email"]) == ("bob", "Bob Reader",
                                                                "bob@fmw.test")
    assert claims["groups"] == ["fmw-readers"]


def test_st_login_request_gets_the_api_audience_without_a_resource_parameter(
    oidc_provider: Provider,
) -> None:
    # What st.login sends: its default scope and prompt=select_account, no `resource`.
    tokens = login(oidc_provider, "bob", scope="openid email profile", prompt="select_account")
    claims = verify(oidc_provider, tokens["access_token"], audience="fmw-api")
    assert (claims["sub"], claims["groups"]) == ("bob", ["fmw-readers"])


def test_wrong_password_yields_no_code_but_the_form_again(oidc_provider: Provider) -> None:
    with pytest.raises(PermissionError, match="Wrong user name or password"):
        login(oidc_provider, "alice", password="not-her-password")
    with pytest.raises(PermissionError):
        login(oidc_provider, "mallory", password="anything")


def test_select_account_switches_user_and_logout_returns_to_the_client(
    oidc_provider: Provider,
) -> None:
    with requests.Session() as browser:
        first = login(oidc_provider, "alice", browser=browser, prompt="select_account")
        second = login(oidc_provider, "bob", browser=browser, prompt="select_account")
        assert jwt.decode(first["access_token"], options={"verify_signature": False})["sub"] \
            == "alice"
        assert verify(oidc_provider, second["access_token"], "fmw-api")["sub"] == "bob"
        back = oidc_provider.logout(browser, second["id_token"], "fmw-explorer", REDIRECT_URI)
        assert back.startswith(REDIRECT_URI)


def test_forged_tokens_use_the_real_keys(oidc_provider: Provider) -> None:
    good = oidc_provider.forge_access_token("alice")
    assert verify(oidc_provider, good, "fmw-api")["groups"] == USERS["alice"]["groups"]
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(oidc_provider, oidc_provider.forge_access_token("alice", exp=1), "fmw-api")
    with pytest.raises(jwt.InvalidAudienceError):
        verify(oidc_provider, oidc_provider.forge_access_token("alice", aud="other"), "fmw-api")


def test_restart_with_a_new_key_rotates_the_jwks(
    oidc_provider_factory: Callable[..., Provider],
) -> None:
    idp = oidc_provider_factory()
    old_kid, issuer = idp.private_keys[0]["kid"], idp.issuer
    assert jwt.get_unverified_header(login(idp, "alice")["access_token"])["kid"] == old_kid
    new_key = Provider.new_key()
    idp.restart(keys=[new_key])
    assert idp.issuer == issuer
    kids = [k["kid"] for k in requests.get(idp.jwks_uri, timeout=5).json()["keys"]]
    assert kids == [new_key["kid"]]
    token = login(idp, "alice")["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == new_key["kid"]
    assert verify(idp, token, "fmw-api")["sub"] == "alice"


def test_stop_ends_the_node_process_cleanly(tmp_path: Path) -> None:
    idp = Provider.start(tmp_path, users=USERS, clients=CLIENTS)
    proc = idp._proc
    assert proc is not None
    idp.stop()
    assert proc.returncode == 0
    assert "GET /.well-known/openid-configuration 200" in (tmp_path / "idp.log").read_text()
