"""Token validation without Node.js: the same checks as test_signon.py's against the real
provider, here with keys served by a small discovery/JWKS server on loopback. This file also
runs in the Windows lane (where the Node.js provider cannot), proving the crypto wheels and the
key fetch work under the Windows Python.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.identity import AuthRefused, OidcVerifier, ProviderUnavailable, principal_from_claims
from fmw.authconfig import AuthConfig, RoleRule


class KeyServer:
    """Discovery document and JWKS on a loopback port; `keys` can be swapped (rotation)."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": outer.issuer, "jwks_uri": outer.issuer + "/jwks"}
                elif self.path == "/jwks":
                    outer.fetches += 1
                    body = {"keys": [_public_jwk(k, kid) for kid, k in outer.keys.items()]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _public_jwk(key: Any, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


@pytest.fixture
def keys() -> Iterator[KeyServer]:
    server = KeyServer()
    server.keys = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                   "e1": ec.generate_private_key(ec.SECP256R1())}
    yield server
    server.close()


def config(server: KeyServer) -> AuthConfig:
    return AuthConfig(mode="oidc", issuer=server.issuer, client_id="fmw", audience="fmw-api",
                      roles=(RoleRule("readers", "viewer"),
                             RoleRule("ims", "scoped", feature_groups=("volte",))))


def token(server: KeyServer, kid: str = "k1", *, alg: str | None = None, key: Any = None,
          **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": server.issuer, "aud": "fmw-api", "sub": "u1", "name": "유저",
            "groups": ["ims"], "iat": now, "exp": now + 300} | claims
    body = {k: v for k, v in body.items() if v is not None}
    signer = key or server.keys[kid]
    alg = alg or ("RS256" if isinstance(signer, rsa.RSAPrivateKey) else "ES256")
    return jwt.encode(body, signer, algorithm=alg, headers={"kid": kid})


def test_valid_tokens_of_rsa_and_ec_keys_pass_and_map_to_a_scope(keys: KeyServer) -> None:
    v = OidcVerifier(config(keys))
    for kid in ("k1", "e1"):
        claims = v.verify(token(keys, kid))
        who = principal_from_claims(claims, config(keys))
        assert (who.subject, who.name, who.role) == ("u1", "유저", "scoped")
        assert who.scope is not None and who.scope.groups() == frozenset({"volte"})
    assert v.verify(token(keys, "k1", alg="PS256"))["sub"] == "u1"


@pytest.mark.parametrize("case,words", [
    ("expired", "expired"), ("future", "not yet valid"), ("issuer", "another issuer"),
    ("audience", "another audience"), ("signature", "signature"), ("kid", "key id"),
    ("none", "'none'"), ("hmac", "'HS256'"), ("sub", "'sub'"), ("exp", "'exp'"),
    ("huge", "longer than"), ("garbage", "malformed"),
])
def test_every_fault_is_refused_with_its_reason(keys: KeyServer, case: str,
                                                words: str) -> None:
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "expired": lambda: token(keys, iat=now - 900, exp=now - 600),
        "future": lambda: token(keys, nbf=now + 600),
        "issuer": lambda: token(keys, iss="http://127.0.0.1:1"),
        "audience": lambda: token(keys, aud="other"),
        "signature": lambda: token(keys, key=other),
        "kid": lambda: token(keys, "k9", key=other),
        "none": lambda: jwt.encode({"sub": "u1"}, None, algorithm="none",
                                   headers={"kid": "k1"}),
        "hmac": lambda: jwt.encode({"sub": "u1"}, "s" * 32, algorithm="HS256",
                                   headers={"kid": "k1"}),
        "sub": lambda: token(keys, sub=None),
        "exp": lambda: token(keys, exp=None),
        "huge": lambda: "a" * 20_000,
        "garbage": lambda: "x.y.z",
    }[case]()
    with pytest.raises(AuthRefused) as caught:
        OidcVerifier(config(keys)).verify(bad)
    assert words in caught.value.reason and caught.value.status == 401


def test_rotation_fetches_once_and_forgets_the_old_key(keys: KeyServer) -> None:
    v = OidcVerifier(config(keys))
    old = token(keys, "k1")
    assert v.verify(old)["sub"] == "u1"
    keys.keys = {"k2": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
    fetched = keys.fetches
    assert v.verify(token(keys, "k2"))["sub"] == "u1"  # an unknown kid: fetched again
    assert keys.fetches == fetched + 1
    with pytest.raises(AuthRefused, match="rotated away"):
        v.verify(old)  # remembered before, forgotten at the fetch
    for _ in range(20):  # a flood of unknown key ids costs at most one fetch per 10 s
        with pytest.raises(AuthRefused):
            v.verify(token(keys, "k9", key=keys.keys["k2"]))
    assert keys.fetches == fetched + 1


def test_no_provider_and_no_keys_is_unavailable_not_refused(keys: KeyServer) -> None:
    cfg = config(keys)
    keys.close()
    with pytest.raises(ProviderUnavailable):
        OidcVerifier(cfg).verify(token(keys))


def test_a_provider_claiming_another_issuer_is_not_trusted(keys: KeyServer) -> None:
    import dataclasses
    cfg = dataclasses.replace(config(keys), issuer=keys.issuer + "/")
    with pytest.raises(ProviderUnavailable, match="says its issuer"):
        OidcVerifier(cfg).verify(token(keys))
