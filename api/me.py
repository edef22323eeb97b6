"""The signed-in caller (``auth.mode = "oidc"``): who am I, and my personal API tokens.

    GET    /api/me                    name, role, row scope, how the caller signed in
    GET    /api/me/tokens             my tokens (never their secrets)
    POST   /api/me/tokens             make one: {"name": "...", "days": 90} -> 201 with the secret
    DELETE /api/me/tokens/{token}     revoke one of mine (prefix or id)

Tokens are managed with the provider's sign-on only (not with a personal token or a key), and
every change is audited with the user.
"""

from __future__ import annotations

import falcon

from api.errors import Problem, bad_request
from api.params import json_body
from api.principal import Principal
from api.services import Services
from ledger.tokens import TokenRefused

ME_PREFIX = "/api/me"
DEFAULT_DAYS = 90


def is_me(path: str) -> bool:
    return path == ME_PREFIX or path.startswith(ME_PREFIX + "/")


def _caller(req: falcon.Request, svc: Services) -> Principal:
    who: Principal | None = getattr(req.context, "principal", None)
    if svc.signon is None or who is None:
        raise Problem(404, "Not Found", "sign-on is off (auth.mode = 'allowlist'): there is no "
                      "signed-in user", kind="sign-on-off")
    return who


def _signed_in(req: falcon.Request, svc: Services) -> Principal:
    who = _caller(req, svc)
    if who.via != "oidc" or who.subject is None:
        raise Problem(403, "Forbidden", "personal tokens are managed after signing in with the "
                      "identity provider, not with a token or an API key", kind="sign-on-needed")
    return who


class Me:
    """GET /api/me"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = _caller(req, self.svc)
        resp.media = {"subject": who.subject, "name": who.name, "role": who.role,
                      "scope": who.scope.as_json() if who.scope else None, "via": who.via}


class Tokens:
    """GET/POST /api/me/tokens"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = _signed_in(req, self.svc)
        resp.media = {"tokens": [t.as_json() for t in self.svc.gateway.list_tokens(who.subject)]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = _signed_in(req, self.svc)
        body = json_body(req)
        if not isinstance(body, dict):
            raise bad_request('the body must be {"name": "...", "days": 90}')
        name, days = body.get("name"), body.get("days", DEFAULT_DAYS)
        if not isinstance(name, str):
            raise bad_request("name must be a string", field="name")
        if isinstance(days, bool) or not isinstance(days, int):
            raise bad_request("days must be a whole number", field="days")
        role = "scoped" if who.role == "scoped" else "viewer"  # tokens only read
        try:
            made = self.svc.gateway.create_token(
                subject=who.subject, user_name=who.name or who.subject or "", name=name,
                role=role, scope=who.scope.as_json() if who.scope else None, days=days,
                max_days=self.svc.settings.auth.token_max_days)
        except TokenRefused as exc:
            raise bad_request(str(exc)) from None
        req.context.audit_detail = f"personal token {made.token.prefix} made ({role})"
        resp.status = falcon.HTTP_201
        resp.media = {**made.token.as_json(), "token": made.secret,
                      "note": "shown once: store it now; FMW keeps only its hash"}


class Token:
    """DELETE /api/me/tokens/{token}"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_delete(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        who = _signed_in(req, self.svc)
        try:
            gone = self.svc.gateway.revoke_token(token, who.subject)
        except TokenRefused as exc:
            raise Problem(404, "Not Found", str(exc), kind="unknown-token") from None
        self.svc.signon.forget(gone.prefix)
        req.context.audit_detail = f"personal token {gone.prefix} revoked"
        resp.media = gone.as_json()
