"""The `[auth]` table of fmw.toml: who a caller is (allow list only, or OpenID Connect sign-on)
and which role and row scope each provider group maps to.

```toml
[auth]
mode = "oidc"                      # "allowlist" (default): addresses only, as in Phase 1
issuer = "https://adfs.example.com/adfs"
client_id = "fmw"
client_secret = "..."              # or FMW_AUTH_CLIENT_SECRET
audience = "fmw-api"               # the `aud` of access tokens (default: client_id)

[[auth.roles]]
group = "FMW-Admins"
role = "admin"

[[auth.roles]]
group = "FMW-IMS"
role = "scoped"
feature_groups = ["ims", "volte"]
mccs = ["450"]
```
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from fmw.errors import ConfigError

AuthMode = Literal["allowlist", "oidc"]
Role = Literal["viewer", "scoped", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
#: Signature algorithms FMW accepts from a provider: asymmetric only (never "none", never HMAC
#: with a public key as the secret).
ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                               "ES384", "ES512")
_CLAIM_RE = re.compile(r"^[A-Za-z0-9_:/.-]{1,200}$")


@dataclass(frozen=True)
class RoleRule:
    """Members of provider group `group` get `role`; a scoped role sees only the rows of its
    feature groups AND operators AND MCCs (a list left out: any)."""

    group: str
    role: Role
    feature_groups: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    mccs: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthConfig:
    mode: AuthMode = "allowlist"
    issuer: str = ""
    client_id: str = ""
    client_secret: str | None = field(default=None, repr=False)
    audience: str = ""
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    groups_claim: str = "groups"
    name_claim: str = "name"
    #: PEM bundle that signs the provider's HTTPS certificate (company CA); None: system store.
    ca_file: Path | None = None
    jwks_cache_s: float = 300.0
    leeway_s: float = 30.0
    http_timeout_s: float = 5.0
    #: The explorer's sign-in callback as the browser reaches it (through Nginx).
    redirect_uri: str | None = None
    token_max_days: int = 365
    roles: tuple[RoleRule, ...] = ()

    @property
    def oidc(self) -> bool:
        return self.mode == "oidc"

    @property
    def token_audience(self) -> str:
        return self.audience or self.client_id

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


MAX_ROLE_VALUES = 500
MAX_NAME_CHARS = 256


def _strings(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or len(value) > MAX_ROLE_VALUES
            or not all(isinstance(v, str) and v.strip() and len(v) <= MAX_NAME_CHARS
                       and not any(ord(c) < 32 for c in v) for v in value)):
        raise ConfigError(f"{where}.{key} must be a list of at most {MAX_ROLE_VALUES} "
                          f"non-empty names of at most {MAX_NAME_CHARS} printable characters")
    return tuple(sorted({v.strip() for v in value}))


def parse_role(raw: Any, where: str) -> RoleRule:
    """Validate one role-map entry ``{group, role, feature_groups?, operators?, mccs?}``
    (a `[[auth.roles]]` table, or an entry admins edit in the Dev page).

    Raises:
        ConfigError: naming `where` and the key.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table/object with group and role")
    unknown = sorted(set(raw) - {"group", "role", "feature_groups", "operators", "mccs"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid: "
                          "group, role, feature_groups, operators, mccs")
    group, role = raw.get("group"), raw.get("role")
    if (not isinstance(group, str) or not group.strip() or len(group) > MAX_NAME_CHARS
            or any(ord(c) < 32 for c in group)):
        raise ConfigError(f"{where}.group must be the provider's group name (1-"
                          f"{MAX_NAME_CHARS} printable characters)")
    if role not in ROLES:
        raise ConfigError(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
    dims = {k: _strings(raw, k, where) for k in ("feature_groups", "operators", "mccs")}
    if role == "scoped" and not any(dims.values()):
        raise ConfigError(f"{where}: a scoped role needs feature_groups, operators or mccs")
    if role != "scoped" and any(dims.values()):
        raise ConfigError(f"{where}: only a scoped role takes feature_groups, operators, mccs")
    return RoleRule(group.strip(), cast(Role, role), **dims)


def role_json(rule: RoleRule) -> dict[str, Any]:
    out: dict[str, Any] = {"group": rule.group, "role": rule.role}
    for key in ("feature_groups", "operators", "mccs"):
        if getattr(rule, key):
            out[key] = list(getattr(rule, key))
    return out


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be an http(s) URL, got {url!r}")
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:  # keys fetched over plain HTTP could be swapped on the way
            raise ConfigError(f"{what} must use https (plain http only on a loopback "
                              f"address), got {url!r}")


def parse_auth(raw: Any, env: Mapping[str, str], base_dir: Path) -> AuthConfig:
    """Validate the `[auth]` table; FMW_AUTH_MODE, FMW_AUTH_ISSUER, FMW_AUTH_CLIENT_ID,
    FMW_AUTH_CLIENT_SECRET and FMW_AUTH_AUDIENCE override it.

    Raises:
        ConfigError: naming the key and the reason.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("auth must be a table ([auth])")
    known = {f for f in AuthConfig.__dataclass_fields__}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"auth: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = dict(raw)
    for key in ("mode", "issuer", "client_id", "client_secret", "audience"):
        if env.get(f"FMW_AUTH_{key.upper()}"):
            values[key] = env[f"FMW_AUTH_{key.upper()}"]
    for key in ("mode", "issuer", "client_id", "client_secret", "audience", "groups_claim",
                "name_claim", "redirect_uri"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise ConfigError(f"auth.{key} must be a string")
    mode = values.get("mode", "allowlist")
    if mode not in get_args(AuthMode):
        raise ConfigError(f"auth.mode must be 'allowlist' or 'oidc', got {mode!r}")
    for key in ("jwks_cache_s", "leeway_s", "http_timeout_s", "token_max_days"):
        v = values.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0
                              or v > 10**7):
            raise ConfigError(f"auth.{key} must be a number between 0 and 10000000")
    scopes = _strings(values, "scopes", "auth") if "scopes" in values else AuthConfig.scopes
    if "openid" not in scopes:
        raise ConfigError("auth.scopes must include 'openid'")
    for key in ("groups_claim", "name_claim"):
        if key in values and not _CLAIM_RE.match(values[key]):
            raise ConfigError(f"auth.{key} must be a claim name, got {values[key]!r}")
    roles_raw = values.get("roles", [])
    if not isinstance(roles_raw, list):
        raise ConfigError("auth.roles must be an array of tables ([[auth.roles]])")
    ca = values.get("ca_file")
    ca_path = None
    if ca is not None:
        if not isinstance(ca, str):
            raise ConfigError("auth.ca_file must be a path")
        ca_path = Path(ca).expanduser()
        ca_path = ca_path if ca_path.is_absolute() else base_dir / ca_path
    cfg = AuthConfig(
        mode=cast(AuthMode, mode), issuer=values.get("issuer", "").strip(),
        client_id=values.get("client_id", "").strip(),
        client_secret=values.get("client_secret") or None,
        audience=values.get("audience", "").strip(), scopes=scopes,
        groups_claim=values.get("groups_claim", AuthConfig.groups_claim),
        name_claim=values.get("name_claim", AuthConfig.name_claim), ca_file=ca_path,
        jwks_cache_s=float(values.get("jwks_cache_s", AuthConfig.jwks_cache_s)),
        leeway_s=float(values.get("leeway_s", AuthConfig.leeway_s)),
        http_timeout_s=float(values.get("http_timeout_s", AuthConfig.http_timeout_s)) or 5.0,
        redirect_uri=values.get("redirect_uri") or None,
        token_max_days=int(values.get("token_max_days", AuthConfig.token_max_days)) or 1,
        roles=tuple(parse_role(r, f"auth.roles[{i}]") for i, r in enumerate(roles_raw)),
    )
    if cfg.oidc:
        if not cfg.issuer:
            raise ConfigError("auth.mode = 'oidc' needs auth.issuer")
        _check_url(cfg.issuer, "auth.issuer")
        if not cfg.client_id:
            raise ConfigError("auth.mode = 'oidc' needs auth.client_id")
    if cfg.redirect_uri:
        _check_url(cfg.redirect_uri, "auth.redirect_uri")
    return cfg
