"""Request pipeline: limits, allow list, dev rate limit and API key; then metrics, audit and the
snapshot header on the way out.

The client address is ``REMOTE_ADDR`` as waitress sets it: waitress replaces it with the
X-Forwarded-For address only when the peer is the configured trusted proxy, so this module
never reads forwarding headers itself.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

import falcon

from api.errors import Problem, serialize
from api.me import is_me
from api.openapi import build_spec
from api.principal import AuthRefused, Principal, ProviderUnavailable
from api.services import Services, api_setting
from fmw import relay
from ledger.audit import AuditEntry

log = logging.getLogger(__name__)

DEV_PREFIX = "/api/dev"
V1_PREFIX = "/api/v1"
AUDIT_TEXT_MAX = 2000


def is_dev(path: str) -> bool:
    return path == DEV_PREFIX or path.startswith(DEV_PREFIX + "/")


def is_v1(path: str) -> bool:
    return path == V1_PREFIX or path.startswith(V1_PREFIX + "/")


def _header_text(text: str) -> str:
    """`text` safe inside a quoted header parameter (printable ASCII, no quotes)."""
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "?" for c in text)[:300]


def bearer_token(req: falcon.Request) -> str | None:
    auth = req.get_header("Authorization") or ""
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


#: Who an allowed address is without sign-on (built once, not per request).
BY_ADDRESS: dict[str, Principal] = {
    "admin": Principal(None, None, "admin", None, "address"),
    "user": Principal(None, None, "viewer", None, "address"),
}

#: Methods that change something: their audit row is written before they run.
MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def _control_chars(text: str) -> bool:
    return any(ord(c) < 32 and c != "\t" or c == "\x7f" for c in text)


def _target(req: falcon.Request) -> str:
    """The path and query a relaying explorer signed (see fmw.relay)."""
    return req.path + ("?" + req.query_string if req.query_string else "")


class Guard:
    """Refuses what must not reach a resource; order: size, relay, rate, address, key; then,
    for a dev call that changes something, its audit row before it runs."""

    def __init__(self, services: Services) -> None:
        self.svc = services
        self.max_body = int(api_setting(services.settings, "api_max_body_bytes"))
        self.max_query = int(api_setting(services.settings, "api_max_query_chars"))

    def _relay(self, req: falcon.Request) -> None:
        """The person's address when the explorer relays the call (fmw.relay)."""
        on_behalf = req.get_header(relay.ON_BEHALF_OF)
        signature = req.get_header(relay.SIGNATURE)
        if on_behalf is None and signature is None:
            return
        ctx = req.context
        try:
            found = relay.verify(self.svc.relay_key(), ctx.client, on_behalf or "",
                                 signature or "", req.method, _target(req))
        except relay.RelayRefused as exc:
            raise Problem(403, "Forbidden", f"relayed call refused: {exc}",
                          kind="relay-refused") from None
        ctx.client, ctx.via = found.client, found.via

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = req.context
        ctx.started = time.perf_counter()
        ctx.client = req.remote_addr or ""
        ctx.via = None
        ctx.key_id = None
        ctx.dev = is_dev(req.path)
        ctx.me = is_me(req.path)
        ctx.audit = ctx.dev or (ctx.me and req.method in MUTATING)
        self.svc.allow_list.maybe_refresh()
        if ctx.dev and (_control_chars(req.path) or _control_chars(req.query_string or "")
                        or any(_control_chars(f"{k}={v}") for k, v in req.params.items())):
            # what cannot be written to the audit log exactly must not happen at all
            raise Problem(400, "Bad Request", "control characters (NUL, CR, LF, ...) are not "
                          "accepted in dev API paths and parameters", kind="bad-request")
        self._relay(req)
        if req.content_length is not None and req.content_length > self.max_body:
            raise Problem(413, "Content Too Large", f"request bodies are limited to "
                          f"{self.max_body} bytes", kind="too-large", limit=self.max_body)
        if len(req.query_string or "") > self.max_query:
            raise Problem(414, "URI Too Long", f"query strings are limited to {self.max_query} "
                          "characters", kind="uri-too-long", limit=self.max_query)
        if ctx.dev:
            wait = self.svc.dev_rate.take(ctx.client)
            if wait > 0:
                ctx.audit = False  # a flood must not flood the audit log; metrics count it
                raise Problem(429, "Too Many Requests", "dev API rate limit reached for your "
                              "address; retry later", kind="rate-limited",
                              headers={"Retry-After": str(max(1, math.ceil(wait)))},
                              retry_after_s=round(wait, 3))
        role = self.svc.allow_list.role(ctx.client)
        ctx.role = role
        ctx.principal = None
        if role is None:
            # one line per refusal, the path escaped by the log formatter (fmw.logs)
            log.warning("refused %s %s %s: address not on the allow list", ctx.client,
                        req.method, req.path[:AUDIT_TEXT_MAX])
            raise Problem(403, "Forbidden", f"address {ctx.client} is not on the allow list",
                          kind="address-not-allowed", client=ctx.client)
        if ctx.dev and role != "admin":
            raise Problem(403, "Forbidden", f"the dev API needs an admin address; "
                          f"{ctx.client} is a user address", kind="admin-only",
                          client=ctx.client)
        if self.svc.signon is not None and (ctx.dev or ctx.me or is_v1(req.path)):
            ctx.principal = self._sign_on(req)
            if ctx.principal.via == "key":
                ctx.key_id = ctx.principal.token_id
            return
        ctx.principal = BY_ADDRESS[role]
        if ctx.dev:
            token = bearer_token(req)
            key = self.svc.gateway.check_key(token) if token else None
            if key is None:
                raise Problem(401, "Unauthorized", "the dev API needs a valid API key: "
                              "`Authorization: Bearer <key>` (create one with `fmw apikey "
                              "create NAME`)", kind="api-key",
                              headers={"WWW-Authenticate": 'Bearer realm="fmw-dev"'})
            ctx.key_id = key.id

    def _sign_on(self, req: falcon.Request) -> Principal:
        """The caller's identity from its bearer credential (``auth.mode = "oidc"``)."""
        ctx = req.context
        try:
            who = self.svc.signon.principal(bearer_token(req), dev=ctx.dev)
        except AuthRefused as exc:
            if exc.status == 403:
                raise Problem(403, "Forbidden", exc.reason, kind="role-refused") from None
            log.warning("sign-on refused %s %s %s: %s", ctx.client, req.method,
                        req.path[:AUDIT_TEXT_MAX], exc.reason)
            raise Problem(401, "Unauthorized", exc.reason, kind="token-refused", headers={
                "WWW-Authenticate": f'Bearer realm="fmw", error="invalid_token", '
                                    f'error_description="{_header_text(exc.reason)}"'}) from None
        except ProviderUnavailable as exc:
            log.error("sign-on impossible: %s", exc)
            raise Problem(503, "Identity Provider Unavailable", "the identity provider cannot "
                          "be reached to check your token; retry shortly",
                          kind="provider-unavailable", headers={"Retry-After": "30"}) from None
        return who

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        """A dev call with a parameter its route does not take is a 400 (like v1's unknown
        field); a dev call that changes something is audited before it runs: if its row
        cannot be written, it does not run (503)."""
        ctx = req.context
        if ctx.dev and resource is not None:
            known = DEV_PARAMS.get((_spec_path(req.uri_template or ""), req.method.lower()),
                                   frozenset(req.params))
            unknown = sorted(set(req.params) - known)
            if unknown:
                raise Problem(400, "Unknown Parameter", f"{req.path} does not take "
                              f"{', '.join(map(repr, unknown))}; valid: "
                              f"{', '.join(sorted(known)) or '(none)'}", kind="unknown-parameter",
                              parameter=unknown[0], valid_parameters=sorted(known))
        if not ((ctx.dev or ctx.me) and req.method in MUTATING and resource is not None
                and hasattr(resource, f"on_{req.method.lower()}")):
            return
        try:
            ctx.intent_seq = self.svc.gateway.audit(entry_for(req, 0, "begin"))
        except Exception as exc:
            ctx.audit = False  # the outcome row would fail the same way
            log.error("dev call %s %s refused: its audit row could not be written: %s",
                      req.method, req.path, exc)
            raise Problem(503, "Audit Unavailable", "this call was not carried out because "
                          "its audit record could not be written; retry when the ledger "
                          "database is back", kind="audit-unavailable",
                          headers={"Retry-After": "30"}) from None


def _spec_path(template: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", template)


def _dev_params() -> dict[tuple[str, str], frozenset[str]]:
    """The query parameters each dev operation takes, from the OpenAPI document."""
    out = {}
    for path, ops in build_spec()["paths"].items():
        if path.startswith(DEV_PREFIX + "/"):
            for method, op in ops.items():
                out[(path, method)] = frozenset(p["name"] for p in op.get("parameters", ())
                                                if p.get("in") == "query")
    return out


DEV_PARAMS = _dev_params()


def entry_for(req: falcon.Request, status: int, detail: str | None) -> AuditEntry:
    ctx = req.context
    via = getattr(ctx, "via", None)
    if via:
        detail = f"via explorer {via}" + (f"; {detail}" if detail else "")
    who = getattr(ctx, "principal", None)
    return AuditEntry(client=ctx.client, method=req.method, path=req.path[:AUDIT_TEXT_MAX],
                      query=(req.query_string or "")[:AUDIT_TEXT_MAX], status=status,
                      key_id=getattr(ctx, "key_id", None), detail=detail,
                      subject=who.subject if who is not None else None,
                      user_name=who.name if who is not None and who.subject else None)


class Observe:
    """Metrics for every request; the audit row for dev calls; X-Snapshot-Version."""

    def __init__(self, services: Services) -> None:
        self.svc = services

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        ctx = req.context
        started = getattr(ctx, "started", None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        route = req.uri_template or "(unmatched)"
        status = resp.status_code
        self.svc.metrics.observe(req.method, route, status, elapsed)
        if resp.get_header("X-Snapshot-Version") is None:
            try:
                resp.set_header("X-Snapshot-Version", str(self.svc.snapshots.current().version))
            except Exception:  # nothing published yet: say so rather than omit the header
                resp.set_header("X-Snapshot-Version", "none")
        if getattr(ctx, "audit", False):
            self._audit(req, resp, status)

    def _audit(self, req: falcon.Request, resp: falcon.Response, status: int) -> None:
        """The outcome row of a dev call. When it cannot be written, a read is answered 503
        (its data is not handed out unaudited); a change already has its "begin" row, keeps
        its real status (a retry could apply it twice) and says so in a header."""
        ctx = req.context
        try:
            self.svc.gateway.audit(entry_for(req, status, getattr(ctx, "audit_detail", None)))
            return
        except Exception as exc:
            log.error("audit row not written for %s %s (%s): %s", req.method, req.path,
                      status, exc)
        if status >= 400:  # already refused: nothing was handed out or changed
            return
        if getattr(ctx, "intent_seq", None) is not None:
            resp.set_header("FMW-Audit", f"begin row {ctx.intent_seq} only; outcome not "
                            "recorded")
            return
        problem = Problem(503, "Audit Unavailable", "the answer is withheld because its "
                          "audit record could not be written; retry when the ledger database "
                          "is back", kind="audit-unavailable", headers={"Retry-After": "30"})
        resp.stream = None
        resp.status = falcon.HTTP_503
        resp.set_header("Retry-After", "30")
        serialize(req, resp, problem)
