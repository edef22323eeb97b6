"""A real OpenID Connect provider for sign-on tests: the certified `oidc-provider` under Node.

`tests/idp/server.js` is the provider; this module writes its config, runs it on a loopback port
and drives it the way a browser and a relying party would::

    from tests.oidc_provider import Provider

    users = {"alice": {"password": "pw", "name": "Alice", "email": "a@x.test", "groups": ["ops"]}}
    clients = [{"client_id": "fmw-ui", "client_secret": "s3cret",
                "redirect_uris": ["https://127.0.0.1:8443/streamlit/oauth2callback"]}]
    with Provider.start(tmp_path, users=users, clients=clients) as idp:
        idp.issuer, idp.metadata_url                 # for the API / st.login settings
        tokens = idp.login("alice", "pw", "fmw-ui", "s3cret", clients[0]["redirect_uris"][0])
        tokens["access_token"]                       # RS256 JWT, aud "fmw-api", groups, name
        idp.forge_access_token("alice", exp=1)       # signed with the real key, but expired
        idp.restart(keys=[Provider.new_key()])       # key rotation on the same port

Needs `node` and `npm ci --prefix tests/idp` (`.ci/run` and `quickstart.py test` do that).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Self

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

IDP_DIR = Path(__file__).resolve().parent / "idp"
SERVER_JS = IDP_DIR / "server.js"
INSTALL_HINT = "npm ci --prefix tests/idp"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(
            "The OIDC test provider needs Node.js: install it (apt-get install nodejs npm), "
            f"then run `{INSTALL_HINT}` in the repository root"
        )
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(f"tests/idp/node_modules is missing: run `{INSTALL_HINT}`")
    return node


class Provider:
    """One running provider process; start with `Provider.start`, stop with `stop()` or `with`."""

    def __init__(self, workdir: Path, *, users: dict[str, dict[str, Any]],
                 clients: list[dict[str, Any]], keys: list[dict[str, Any]], port: int,
                 resource: str, access_token_ttl: int, id_token_ttl: int) -> None:
        self.workdir = workdir
        self.users = users
        self.clients = clients
        self.private_keys = keys
        self.port = port
        self.resource = resource
        self.access_token_ttl = access_token_ttl
        self.id_token_ttl = id_token_ttl
        self.issuer = f"http://127.0.0.1:{port}"
        self.metadata: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = workdir / "idp.log"

    @classmethod
    def start(cls, workdir: Path, *, users: dict[str, dict[str, Any]],
              clients: list[dict[str, Any]], keys: list[dict[str, Any]] | None = None,
              port: int | None = None, resource: str = "fmw-api",
              access_token_ttl: int = 600, id_token_ttl: int = 600) -> Provider:
        """Start a provider and wait until its discovery document answers.

        Args:
            workdir: where the config and the provider's log (`idp.log`) go.
            users: `{sub: {password, name, email, groups}}`; the login form takes `sub`.
            clients: oidc-provider client metadata (`client_id`, `client_secret`,
                `redirect_uris`, ...); `post_logout_redirect_uris` defaults to `redirect_uris`.
            keys: private JWKs, the first one signs; one new RSA key when None.
            port: a free loopback port when None.
            resource: the audience of the JWT access tokens.

        Raises:
            RuntimeError: node or `tests/idp/node_modules` is missing, or the provider did not
                come up (the message carries its log).
        """
        _node()
        workdir.mkdir(parents=True, exist_ok=True)
        idp = cls(workdir, users=users, clients=clients, keys=keys or [cls.new_key()],
                  port=port or _free_port(), resource=resource,
                  access_token_ttl=access_token_ttl, id_token_ttl=id_token_ttl)
        idp._launch()
        return idp

    @staticmethod
    def new_key(kid: str | None = None) -> dict[str, Any]:
        """A new private RSA 2048 JWK for RS256 signing."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(private, as_dict=True)
        jwk.pop("key_ops", None)  # ["sign"] would keep oidc-provider from using it to verify
        return {**jwk, "kid": kid or secrets.token_hex(8), "alg": "RS256", "use": "sig"}

    @property
    def metadata_url(self) -> str:
        """The discovery document (`server_metadata_url` for st.login)."""
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return str(self.metadata["jwks_uri"])

    def restart(self, keys: list[dict[str, Any]] | None = None) -> None:
        """Stop and start again on the same port, with `keys` (a new key when None)."""
        self.stop()
        self.private_keys = keys or [self.new_key()]
        self._launch()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _launch(self, timeout: float = 30.0) -> None:
        node = _node()
        config = {
            "issuer": self.issuer, "port": self.port, "host": "127.0.0.1",
            "clients": self.clients, "users": self.users,
            "jwks": {"keys": self.private_keys}, "resource": self.resource,
            "access_token_ttl": self.access_token_ttl, "id_token_ttl": self.id_token_ttl,
        }
        cfg = self.workdir / "idp.json"
        cfg.write_text(json.dumps(config, indent=2), encoding="utf-8")
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen([node, str(SERVER_JS), str(cfg)], cwd=IDP_DIR,
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                break
            try:
                r = requests.get(self.metadata_url, timeout=2)
                if r.status_code == 200:
                    self.metadata = r.json()
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.stop()
        log_tail = self._log.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"the OIDC provider did not start on {self.issuer}:\n{log_tail}")

    def login(self, username: str, password: str, client_id: str, client_secret: str,
              redirect_uri: str, *, scope: str = "openid profile email groups",
              browser: requests.Session | None = None, **params: str) -> dict[str, Any]:
        """Sign in through the real login form (authorization code + PKCE); the token response.

        `params` go into the authorization request as they are (`prompt="select_account"`, as
        st.login sends). `browser` keeps the provider's session cookies across logins.

        Raises:
            PermissionError: the provider did not send back a code (wrong password, ...).
        """
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        state = secrets.token_urlsafe(16)
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                 "scope": scope, "state": state, "nonce": secrets.token_urlsafe(16),
                 "code_challenge": challenge.rstrip(b"=").decode(),
                 "code_challenge_method": "S256", **params}
        with nullcontext(browser) if browser else requests.Session() as browser:
            url = f"{self.metadata['authorization_endpoint']}?{urllib.parse.urlencode(query)}"
            r = self._follow(browser, browser.get(url, allow_redirects=False), redirect_uri)
            form_url = r.url
            if r.status_code == 200 and 'name="password"' in r.text:
                r = browser.post(form_url, data={"login": username, "password": password},
                                 allow_redirects=False)
                r = self._follow(browser, r, redirect_uri)
            location = r.headers.get("location", "")
            if not location.startswith(redirect_uri):
                raise PermissionError(f"no code for {username!r}: {r.status_code} {r.text[:300]}")
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
            if "code" not in params or params.get("state") != state:
                raise PermissionError(f"no code for {username!r}: {params}")
        token_request = {"grant_type": "authorization_code", "code": params["code"],
                         "redirect_uri": redirect_uri, "code_verifier": verifier}
        client = next((c for c in self.clients if c["client_id"] == client_id), {})
        auth: tuple[str, str] | None = None
        if client.get("token_endpoint_auth_method", "client_secret_basic") == "client_secret_basic":
            auth = (urllib.parse.quote(client_id, safe=""),
                    urllib.parse.quote(client_secret, safe=""))
        else:
            token_request |= {"client_id": client_id, "client_secret": client_secret}
        r = requests.post(self.metadata["token_endpoint"], data=token_request, auth=auth,
                          timeout=10)
        r.raise_for_status()
        return dict(r.json())

    @staticmethod
    def _follow(browser: requests.Session, r: requests.Response,
                redirect_uri: str) -> requests.Response:
        """Follow redirects on the provider until a page, or a redirect to the client.

        Pages that submit themselves (the provider ends the old session this way when another
        account signs in) are submitted, as a browser would.
        """
        for _ in range(10):
            location = r.headers.get("location")
            if r.is_redirect and location and not location.startswith(redirect_uri):
                r = browser.get(urllib.parse.urljoin(r.url, location), allow_redirects=False)
            elif r.status_code == 200 and "forms[0].submit()" in r.text:
                action = re.search(r'<form method="post" action="([^"]+)"', r.text)
                fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                    r.text)
                target = html.unescape(action[1]) if action else redirect_uri
                if target.startswith(redirect_uri):
                    return r
                r = browser.post(target, allow_redirects=False,
                                 data={k: html.unescape(v) for k, v in fields})
            else:
                return r
        raise RuntimeError(f"too many redirects, last at {r.url}")

    def logout(self, browser: requests.Session, id_token: str, client_id: str,
               post_logout_redirect_uri: str) -> str:
        """RP-initiated logout as st.logout does it, confirming the provider's page.

        Returns:
            Where the provider sends the browser afterwards (the post-logout redirect).
        """
        query = {"client_id": client_id, "id_token_hint": id_token,
                 "post_logout_redirect_uri": post_logout_redirect_uri}
        r = browser.get(self.metadata["end_session_endpoint"], params=query, timeout=10)
        r.raise_for_status()
        action = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)"', r.text)
        xsrf = re.search(r'name="xsrf" value="([^"]+)"', r.text)
        if action is None or xsrf is None:
            raise RuntimeError(f"no logout form at the end_session endpoint: {r.text[:300]}")
        r = browser.post(html.unescape(action[1]), data={"xsrf": xsrf[1], "logout": "yes"},
                         allow_redirects=False, timeout=10)
        return r.headers.get("location", "")

    def forge_access_token(self, sub: str, *, key: dict[str, Any] | None = None,
                           headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """An access token as the provider would issue it for `sub`, with `claims` overridden.

        Signed with the provider's first key unless `key` is given (a foreign key, say); a claim
        set to None is left out.
        """
        key = key or self.private_keys[0]
        user = self.users.get(sub, {})
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.resource, "sub": sub,
                   "name": user.get("name"), "email": user.get("email"),
                   "groups": user.get("groups", []), "iat": now,
                   "exp": now + self.access_token_ttl, "jti": secrets.token_urlsafe(16),
                   "client_id": self.clients[0]["client_id"] if self.clients else "test",
                   "scope": "openid profile email groups"} | claims
        payload = {k: v for k, v in payload.items() if v is not None}
        signing_key = jwt.algorithms.RSAAlgorithm.from_jwk(key)
        return jwt.encode(payload, signing_key, algorithm="RS256",  # type: ignore[arg-type]
                          headers={"kid": key["kid"], "typ": "at+jwt", **(headers or {})})
