"""Sign-in for the explorer (``auth.mode = "oidc"``): Streamlit's ``st.login`` configuration,
planned as data and written once at launch.

``st.login`` reads its provider from the ``[auth]`` section of a secrets file. `plan_signon`
computes that file's text (and what the Streamlit child needs besides: the flag that points it
at the file, the CA bundle to trust the provider with); `write_signon` writes it owner-only
under ``<data_dir>/secrets/``. Nothing here logs the text: it holds the client secret and the
cookie secret.

The cookie secret signs the browser's sign-in cookie; it is made once and kept in
``<data_dir>/secrets/ui-cookie.key``, so a restart of the explorer keeps everyone signed in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import ssl
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fmw.authconfig import AuthConfig, RoleRule
from fmw.errors import ConfigError
from fmw.settings import Settings
from ui.config import UiConfig

log = logging.getLogger(__name__)

#: Streamlit serves its sign-in callback at ``<base path>/oauth2callback``.
CALLBACK = "oauth2callback"
SECRETS_FILE = "streamlit-auth.toml"
COOKIE_KEY_FILE = "ui-cookie.key"
COOKIE_SECRET_BYTES = 32
DISCOVERY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SignonPlan:
    """What the explorer's Streamlit child needs for ``st.login``."""

    secrets_file: Path
    #: The ``[auth]`` section as Streamlit reads it (tests assert on this).
    auth: dict[str, Any] = field(repr=False)
    #: Extra environment of the child (the provider's CA bundle).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        """Streamlit options: read secrets from this file only (no stray secrets.toml)."""
        return [f"--secrets.files={self.secrets_file}"]

    def text(self) -> str:
        """The secrets file (TOML)."""
        return to_toml({"auth": self.auth})


def secrets_dir(data_dir: Path) -> Path:
    return data_dir / "secrets"


def callback_uri(ui: UiConfig, auth: AuthConfig) -> str:
    """The redirect URI registered at the provider: `auth.redirect_uri` (as the browser reaches
    the explorer, through Nginx), else the explorer's own address.

    Raises:
        ConfigError: its path is not the explorer's callback (``<base path>/oauth2callback``).
    """
    uri = auth.redirect_uri or ui.url + CALLBACK
    want = f"/{ui.base_url_path}/{CALLBACK}" if ui.base_url_path else f"/{CALLBACK}"
    path = urlsplit(uri).path
    if path != want:
        raise ConfigError(f"auth.redirect_uri must end in {want} (the explorer's sign-in "
                          f"callback under ui_base_url_path), got {uri!r}")
    return uri


def request_scopes(auth: AuthConfig, provider_scopes: Sequence[str] | None) -> list[str]:
    """The scopes to ask for: the configured ones, plus the groups claim's scope when the
    provider offers one by that name (some providers put a group list in the ID token only
    when asked for it; AD FS and Entra ID send groups by claim rule and have no such scope)."""
    scopes = list(dict.fromkeys(auth.scopes))
    if provider_scopes and auth.groups_claim in provider_scopes \
            and auth.groups_claim not in scopes:
        scopes.append(auth.groups_claim)
    return scopes


def plan_signon(settings: Settings, ui: UiConfig, cookie_secret: str,
                provider_scopes: Sequence[str] | None = None) -> SignonPlan | None:
    """The sign-in configuration of the explorer, or None when sign-on is off.

    Args:
        cookie_secret: signs the browser's sign-in cookie (`cookie_secret` keeps it).
        provider_scopes: the provider's ``scopes_supported`` when known (`discover_scopes`).

    Raises:
        ConfigError: no client secret, or a redirect URI that is not the explorer's callback.
    """
    auth = settings.auth
    if not auth.oidc:
        return None
    if not auth.client_secret:
        raise ConfigError("the explorer's sign-in needs auth.client_secret "
                          "(or FMW_AUTH_CLIENT_SECRET): the provider's secret of client "
                          f"{auth.client_id!r}")
    section: dict[str, Any] = {
        "redirect_uri": callback_uri(ui, auth),
        "cookie_secret": cookie_secret,
        "client_id": auth.client_id,
        "client_secret": auth.client_secret,
        "server_metadata_url": auth.metadata_url,
        # the Tokens page calls the API with the user's access token
        "expose_tokens": ["access"],
        "client_kwargs": {"scope": " ".join(request_scopes(auth, provider_scopes))},
    }
    env: dict[str, str] = {}
    if auth.ca_file is not None:
        env = {"SSL_CERT_FILE": str(auth.ca_file), "REQUESTS_CA_BUNDLE": str(auth.ca_file)}
    return SignonPlan(secrets_dir(settings.data_dir) / SECRETS_FILE, section, env)


def discover_scopes(auth: AuthConfig, timeout_s: float = DISCOVERY_TIMEOUT_S
                    ) -> list[str] | None:
    """The provider's ``scopes_supported`` from its discovery document; None when it cannot
    be read now (the explorer then asks for the configured scopes only)."""
    context = ssl.create_default_context(cafile=str(auth.ca_file) if auth.ca_file else None)
    try:
        with urllib.request.urlopen(auth.metadata_url, timeout=timeout_s,  # noqa: S310
                                    context=context) as resp:
            meta = json.loads(resp.read(1_000_000))
    except (OSError, ValueError) as exc:
        log.warning("could not read the identity provider's discovery document %s (%s); "
                    "asking for the configured scopes only", auth.metadata_url, exc)
        return None
    scopes = meta.get("scopes_supported") if isinstance(meta, dict) else None
    return [str(s) for s in scopes] if isinstance(scopes, list) else None


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` owner-only, atomically (never half-written, never readable by
    others, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cookie_secret(data_dir: Path) -> str:
    """The explorer's cookie secret, made on first use and kept (restarts keep sessions)."""
    path = secrets_dir(data_dir) / COOKIE_KEY_FILE
    try:
        value = path.read_text(encoding="ascii").strip()
        if len(value) >= 2 * COOKIE_SECRET_BYTES:
            return value
    except FileNotFoundError:
        pass
    _write_private(path, secrets.token_hex(COOKIE_SECRET_BYTES) + "\n")
    return path.read_text(encoding="ascii").strip()


def write_signon(plan: SignonPlan) -> Path:
    """Write the plan's secrets file (owner-only); returns its path."""
    _write_private(plan.secrets_file, plan.text())
    return plan.secrets_file


def prepare_signon(settings: Settings, ui: UiConfig) -> SignonPlan | None:
    """At launch: plan (asking the provider which scopes it offers) and write the file."""
    if not settings.auth.oidc:
        return None
    plan = plan_signon(settings, ui, cookie_secret(settings.data_dir),
                       discover_scopes(settings.auth))
    if plan is not None:
        write_signon(plan)
    return plan


def auth_to_json(auth: AuthConfig) -> str:
    """The `[auth]` settings for the explorer's child process (its command line), without the
    client secret: the child never needs it (``st.login`` reads it from the secrets file), and
    a command line is visible to every local user."""
    raw = dataclasses.asdict(auth)
    raw.pop("client_secret")
    raw["ca_file"] = str(auth.ca_file) if auth.ca_file is not None else None
    return json.dumps(raw, separators=(",", ":"))


def auth_from_json(text: str) -> AuthConfig:
    """Raises: ConfigError: not the JSON `auth_to_json` writes."""
    try:
        raw = json.loads(text)
        roles = tuple(RoleRule(r["group"], r["role"], *(tuple(r[k]) for k in (
            "feature_groups", "operators", "mccs"))) for r in raw.pop("roles"))
        ca = raw.pop("ca_file")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in raw.items()}
        return AuthConfig(**values, roles=roles, ca_file=Path(ca) if ca else None)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"bad sign-on configuration for the explorer: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """Tables of strings, booleans, lists and sub-tables as TOML."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        subs = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items() if k not in subs)
        lines.append("")
        for k, v in subs.items():
            table(f"{name}.{k}", v)

    for name, values in tables.items():
        table(name, values)
    return "\n".join(lines)
