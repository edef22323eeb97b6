"""The API's sign-on step (``auth.mode = "oidc"``): the bearer credential of a request becomes a
`Principal`, or the request is refused with the reason.

- an OpenID Connect access token (a JWT from the provider): role and scope from its groups;
- a personal API token (``fmwp_...``, made by a user in the explorer or with `fmw token`):
  the role and scope it was made with; read-only (v1), never the dev API;
- an admin API key (``fmw_...``): admin, for automation and the dev API, as in Phase 1.

Personal tokens are looked up in PostgreSQL and remembered for `CACHE_S` seconds (a revoke
in this process applies at once, elsewhere within that time), so v1 keeps answering their
holders while PostgreSQL is down.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from api.identity import OidcVerifier, principal_from_claims, token_digest
from api.principal import AuthRefused, Principal
from fmw.authconfig import AuthConfig, Role, RoleRule
from ledger.access import KEY_PREFIX
from ledger.tokens import TOKEN_PREFIX, PersonalToken
from query.scope import RowScope

CACHE_S = 30.0
CACHE_MAX = 10_000


class SignOn:
    """Turns bearer credentials into principals (thread-safe; one per API process)."""

    def __init__(self, cfg: AuthConfig, *,
                 check_token: Callable[[str], tuple[PersonalToken | None, str]],
                 check_key: Callable[[str], Any],
                 verifier: OidcVerifier | None = None,
                 rules: Callable[[], Sequence[RoleRule]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.rules = rules or (lambda: cfg.roles)
        self.verifier = verifier or OidcVerifier(cfg)
        self._check_token = check_token
        self._check_key = check_key
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, tuple[float, PersonalToken | None, str]] = OrderedDict()
        self._principals: dict[tuple[int, int], tuple[Any, Any, Principal]] = {}

    def principal(self, credential: str | None, *, dev: bool) -> Principal:
        """Who presents `credential` (the bearer value), for a v1 (`dev` False) or dev call.

        Raises:
            AuthRefused: missing or invalid credential (401), or not allowed here (403);
            ProviderUnavailable, DatabaseUnavailable: cannot be checked right now (503).
        """
        if not credential:
            raise AuthRefused("sign-on required: send `Authorization: Bearer <token>` with an "
                              "access token from the identity provider or a personal API token")
        if credential.startswith(TOKEN_PREFIX):
            if dev:
                raise AuthRefused("personal API tokens read v1 only; the dev API takes an "
                                  "admin's sign-on or an admin API key", status=403)
            return self._personal(credential)
        if credential.startswith(KEY_PREFIX):
            key = self._check_key(credential)
            if key is None:
                raise AuthRefused("unknown or revoked API key")
            return Principal(None, f"API key {key.name}", "admin", None, "key", key.id)
        claims = self.verifier.verify(credential)
        rules = self.rules()
        # the same (remembered) claims under the same role map give the same principal
        key = (id(claims), id(rules))
        hit = self._principals.get(key)
        if hit is not None and hit[0] is claims and hit[1] is rules:
            who = hit[2]
        else:
            who = principal_from_claims(claims, self.cfg, rules)
            if len(self._principals) >= CACHE_MAX:
                self._principals.clear()
            self._principals[key] = (claims, rules, who)
        if dev and who.role != "admin":
            raise AuthRefused(f"{who.name}: the dev API is for admins; your role is {who.role}",
                              status=403)
        return who

    def forget(self, token_prefix: str | None = None) -> None:
        """Drop remembered personal tokens (all, or one revoked here)."""
        with self._lock:
            if token_prefix is None:
                self._tokens.clear()
                return
            for digest, (_, tok, _) in list(self._tokens.items()):
                if tok is not None and tok.prefix == token_prefix:
                    del self._tokens[digest]

    def _personal(self, secret: str) -> Principal:
        digest = token_digest(secret)
        now = self._clock()
        with self._lock:
            hit = self._tokens.get(digest)
        if hit is None or now - hit[0] > CACHE_S:
            try:
                token, reason = self._check_token(secret)
            except Exception:
                if hit is None:
                    raise  # nothing known about it: 503 from the caller's error mapping
                token, reason = hit[1], hit[2]  # PostgreSQL away: the last answer stands
            else:
                with self._lock:
                    self._tokens[digest] = (now, token, reason)
                    self._tokens.move_to_end(digest)
                    while len(self._tokens) > CACHE_MAX:
                        self._tokens.popitem(last=False)
        else:
            token, reason = hit[1], hit[2]
        if token is None or reason:
            raise AuthRefused(reason or "unknown personal token")
        if token.expires_at.timestamp() <= time.time():
            raise AuthRefused("personal token expired")
        role: Role = "scoped" if token.role == "scoped" else "viewer"
        return Principal(token.subject, token.user_name, role, RowScope.from_json(token.scope),
                         "token", token.id)
