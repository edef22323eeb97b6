"""Request pipeline: limits, allow list, dev rate limit and API key; then metrics, audit and the
snapshot header on the way out.

The client address is ``REMOTE_ADDR`` as waitress sets it: waitress replaces it with the
X-Forwarded-For address only when the peer is the configured trusted proxy, so this module
never reads forwarding headers itself.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import falcon

from api.errors import Problem
from api.services import Services, api_setting
from ledger.audit import AuditEntry

log = logging.getLogger(__name__)

DEV_PREFIX = "/api/dev"
AUDIT_TEXT_MAX = 2000


def is_dev(path: str) -> bool:
    return path == DEV_PREFIX or path.startswith(DEV_PREFIX + "/")


def bearer_token(req: falcon.Request) -> str | None:
    auth = req.get_header("Authorization") or ""
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Guard:
    """Refuses what must not reach a resource; order: size, rate, address, key."""

    def __init__(self, services: Services) -> None:
        self.svc = services
        self.max_body = int(api_setting(services.settings, "api_max_body_bytes"))
        self.max_query = int(api_setting(services.settings, "api_max_query_chars"))

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = req.context
        ctx.started = time.perf_counter()
        ctx.client = req.remote_addr or ""
        ctx.key_id = None
        ctx.dev = is_dev(req.path)
        ctx.audit = ctx.dev
        self.svc.allow_list.maybe_refresh()
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
        if role is None:
            raise Problem(403, "Forbidden", f"address {ctx.client} is not on the allow list",
                          kind="address-not-allowed", client=ctx.client)
        if ctx.dev:
            if role != "admin":
                raise Problem(403, "Forbidden", f"the dev API needs an admin address; "
                              f"{ctx.client} is a user address", kind="admin-only",
                              client=ctx.client)
            token = bearer_token(req)
            key = self.svc.gateway.check_key(token) if token else None
            if key is None:
                raise Problem(401, "Unauthorized", "the dev API needs a valid API key: "
                              "`Authorization: Bearer <key>` (create one with `fmw apikey "
                              "create NAME`)", kind="api-key",
                              headers={"WWW-Authenticate": 'Bearer realm="fmw-dev"'})
            ctx.key_id = key.id


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
            self._audit(req, status)

    def _audit(self, req: falcon.Request, status: int) -> None:
        ctx = req.context
        entry = AuditEntry(client=ctx.client, method=req.method,
                           path=req.path[:AUDIT_TEXT_MAX],
                           query=(req.query_string or "")[:AUDIT_TEXT_MAX], status=status,
                           key_id=ctx.key_id, detail=getattr(ctx, "audit_detail", None))
        try:
            self.svc.gateway.audit(entry)
        except Exception as exc:  # the database is down: the response already says 503
            log.warning("audit row not written for %s %s (%s): %s", req.method, req.path,
                        status, exc)
