"""Who is calling: OpenID Connect access tokens (checked against the provider's JWKS), personal
API tokens and admin API keys, turned into a `Principal` with a role and a row scope.

Every refusal is an `AuthRefused` carrying the reason the client is told (401) — expired,
not yet valid, wrong issuer, wrong audience, bad signature, an algorithm FMW does not accept
(``none``, HMAC), a key id the provider does not publish (or rotated away), a revoked or
expired personal token. Keys are fetched from the provider's discovery document, cached for
`auth.jwks_cache_s`, and fetched again (at most every `REFETCH_S`) when a token names a key id
not in the cache, so a rotation is followed without a restart and a rotated-away key stops
working at the next fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt

from api.principal import AuthRefused, Principal, ProviderUnavailable
from fmw.authconfig import ALGORITHMS, AuthConfig, RoleRule
from query.scope import resolve_role

__all__ = ["AuthRefused", "OidcVerifier", "Principal", "ProviderUnavailable",
           "principal_from_claims"]

log = logging.getLogger(__name__)

#: The shortest pause between two key fetches caused by unknown key ids (a flood of forged
#: key ids must not become a flood of requests to the provider).
REFETCH_S = 10.0
MAX_DOCUMENT_BYTES = 1_048_576
MAX_TOKEN_CHARS = 16_384
#: How long a validated token is remembered (never past its `exp`; forgotten at a key fetch).
VALID_CACHE_S = 60.0
MAX_VALID_CACHED = 10_000


def _fetch_json(url: str, cfg: AuthConfig) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=cfg.http_timeout_s,  # noqa: S310 - https/loopback
                                context=ctx if url.startswith("https") else None) as resp:
        body = resp.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return doc


class OidcVerifier:
    """Validates the provider's access tokens (JWT) and returns their claims."""

    def __init__(self, cfg: AuthConfig, *,
                 fetch: Callable[[str, AuthConfig], dict[str, Any]] = _fetch_json,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = -1e18
        self._last_unknown = -1e18
        self._jwks_uri: str | None = None
        #: Tokens already validated (digest -> claims, valid until), cleared when the keys
        #: are fetched again; saves the signature check on every request of a session.
        self._valid: dict[str, tuple[dict[str, Any], float]] = {}

    def _refresh(self) -> None:
        """Fetch the discovery document (once) and the key set."""
        if self._jwks_uri is None:
            meta = self._fetch(self.cfg.metadata_url, self.cfg)
            if meta.get("issuer") != self.cfg.issuer:
                raise ValueError(f"the provider says its issuer is {meta.get('issuer')!r}, "
                                 f"not {self.cfg.issuer!r} (auth.issuer)")
            uri = meta.get("jwks_uri")
            if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
                raise ValueError("the provider's discovery document has no jwks_uri")
            self._jwks_uri = uri
        keyset = self._fetch(self._jwks_uri, self.cfg)
        keys: dict[str, jwt.PyJWK] = {}
        for raw in keyset.get("keys", []):
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(raw)
            except jwt.PyJWKError:
                continue  # a key type this library cannot use: tokens signed with it fail
            keys[str(raw.get("kid", ""))] = key
        self._keys, self._fetched = keys, self._clock()
        self._valid.clear()  # a token accepted under the old key set is checked again
        log.info("identity provider keys fetched: %s", ", ".join(sorted(keys)) or "none")

    def _key(self, kid: str) -> jwt.PyJWK:
        now = self._clock()
        with self._lock:
            stale = now - self._fetched > self.cfg.jwks_cache_s
            unknown = (not stale and kid not in self._keys
                       and now - self._last_unknown >= REFETCH_S)
            if unknown:
                self._last_unknown = now
            if stale or unknown:
                try:
                    self._refresh()
                except Exception as exc:
                    if not self._keys:
                        raise ProviderUnavailable(f"the identity provider's keys could not "
                                                  f"be fetched: {exc}") from None
                    log.warning("identity provider keys not refreshed, keeping %d: %s",
                                len(self._keys), exc)
            key = self._keys.get(kid)
        if key is None:
            raise AuthRefused(f"token signed with key id {kid!r}, which the provider does "
                              "not publish (unknown, or rotated away)")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token.

        Raises:
            AuthRefused: the reason the token is not accepted; ProviderUnavailable.
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthRefused(f"token longer than {MAX_TOKEN_CHARS} characters")
        digest = token_digest(token)
        hit = self._valid.get(digest)
        now = time.time()
        if hit is not None and now < hit[1] and (
                self._clock() - self._fetched <= self.cfg.jwks_cache_s):
            return hit[0]
        claims = self._verify(token)
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            if len(self._valid) >= MAX_VALID_CACHED:
                self._valid.clear()
            self._valid[digest] = (claims, min(float(exp), now + VALID_CACHE_S))
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthRefused("malformed token (not a signed JWT)") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthRefused(f"token algorithm {alg!r} is not accepted; accepted: "
                              f"{', '.join(ALGORITHMS)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthRefused("token has no key id (kid)")
        key = self._key(kid)
        if key.algorithm_name != alg and not _family_matches(key, alg):
            raise AuthRefused(f"token algorithm {alg} does not fit key {kid!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.cfg.token_audience,
                issuer=self.cfg.issuer, leeway=self.cfg.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthRefused("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthRefused("token not yet valid (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthRefused(f"token is for another audience (expected "
                              f"{self.cfg.token_audience!r})") from None
        except jwt.InvalidIssuerError:
            raise AuthRefused(f"token from another issuer (expected {self.cfg.issuer!r})"
                              ) from None
        except jwt.InvalidSignatureError:
            raise AuthRefused("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthRefused(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise AuthRefused(f"token not accepted: {exc}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthRefused("token subject (sub) is not a string")
        return claims


def _family_matches(key: jwt.PyJWK, alg: str) -> bool:
    kty = key.key_type
    return (kty == "RSA" and alg[:2] in ("RS", "PS")) or (kty == "EC" and alg.startswith("ES"))


def groups_of(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The provider groups in `claim` (a list of strings, or one string)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def principal_from_claims(claims: Mapping[str, Any], cfg: AuthConfig,
                          rules: Sequence[RoleRule] | None = None) -> Principal:
    """The role and scope the role map (`rules`, default: the config's) gives the token's
    groups.

    Raises:
        AuthRefused (403): none of the groups has a role in FMW.
    """
    groups = groups_of(claims, cfg.groups_claim)
    role, scope = resolve_role(cfg.roles if rules is None else rules, groups)
    subject = str(claims["sub"])
    name = claims.get(cfg.name_claim)
    name = name if isinstance(name, str) else subject
    if role is None:
        raise AuthRefused(f"{name}: none of your groups has a role in FMW (ask an admin to "
                          f"map one of them in [[auth.roles]])", status=403)
    return Principal(subject, name, role, scope, "oidc")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
