"""dev API: the address allow list, health and metrics."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import falcon

from api.errors import Problem, bad_request
from api.params import json_body
from api.services import Services
from fmw.authconfig import parse_role, role_json
from fmw.errors import ConfigError, FmwError
from ledger.access import parse_entries

log = logging.getLogger(__name__)
MAX_ROLE_ENTRIES = 1000


class AllowList:
    """GET/PUT /api/dev/allow_list (alias /api/dev/slsi/allow_list)"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def _body(self, entries: Any) -> dict[str, Any]:
        st = self.svc.allow_list.state
        return {"entries": [e.as_json() for e in entries],
                "loopback_allowed": bool(getattr(self.svc.allow_list, "_allow_loopback", True)),
                "cached": {"origin": st.origin, "entries": len(st.entries),
                           "loaded_at": _iso(st.loaded_at), "last_error": st.last_error}}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        entries = self.svc.gateway.allow_list()
        self.svc.allow_list.replace(entries)
        resp.media = self._body(entries)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req)
        raw = body.get("entries") if isinstance(body, dict) else body
        if not isinstance(raw, list):
            raise bad_request("the body must be {\"entries\": [...]} (or a bare list) of "
                              "{cidr, role: user|admin, note}")
        entries = parse_entries(raw)
        stored = self.svc.gateway.replace_allow_list(entries)
        self.svc.allow_list.replace(stored)  # applied now, no restart, no wait for a refresh
        req.context.audit_detail = f"allow list replaced: {len(stored)} entries"
        body = self._body(stored)
        if self.svc.allow_list_changed is not None:
            try:
                self.svc.allow_list_changed(stored)
                body["nginx"] = {"status": "ok"}
            except FmwError as exc:  # stored and applied here; the front keeps its old file
                log.warning("allow list stored but the Nginx config was not updated: %s", exc)
                body["nginx"] = {"status": "error", "detail": str(exc)}
        resp.media = body


class Roles:
    """GET/PUT /api/dev/roles: the role map (sign-on). The config's `[[auth.roles]]` are shown
    and kept; PUT replaces the entries stored in PostgreSQL (applied in every API process
    within seconds)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def _role_map(self) -> Any:
        if self.svc.role_map is None:
            raise Problem(404, "Not Found", "sign-on is off (auth.mode = 'allowlist'): there "
                          "is no role map", kind="sign-on-off")
        return self.svc.role_map

    def _body(self, role_map: Any) -> dict[str, Any]:
        return {"config": [role_json(r) for r in role_map.config],
                "entries": [role_json(r) for r in role_map.stored],
                "last_error": role_map.last_error}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        role_map = self._role_map()
        role_map.replace(self.svc.gateway.roles())
        resp.media = self._body(role_map)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        role_map = self._role_map()
        body = json_body(req)
        raw = body.get("entries") if isinstance(body, dict) else body
        if not isinstance(raw, list) or len(raw) > MAX_ROLE_ENTRIES:
            raise bad_request(f'the body must be {{"entries": [...]}} (at most '
                              f"{MAX_ROLE_ENTRIES}) of {{group, role, feature_groups?, "
                              "operators?, mccs?}")
        try:
            rules = [parse_role(r, f"entries[{i}]") for i, r in enumerate(raw)]
        except ConfigError as exc:
            raise bad_request(exc.reason) from None
        stored = self.svc.gateway.replace_roles(rules)
        role_map.replace(stored)
        req.context.audit_detail = f"role map replaced: {len(stored)} entries"
        resp.media = self._body(role_map)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


class Health:
    """GET /api/dev/health"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body: dict[str, Any] = {"status": "ok", "time": datetime.now(UTC).isoformat()}
        try:
            facts = self.svc.gateway.health()
            body["database"] = {"status": "ok", **facts.pop("database")}
            body.update(facts)
        except FmwError as exc:
            body["status"] = "degraded"
            body["database"] = {"status": "unavailable", "detail": str(exc)}
        body["snapshot"] = self._snapshot()
        body["scheduler"] = body.get("scheduler") or self.svc.scheduler_status()
        body["sync_in_progress_here"] = self.svc.launcher.busy
        al = self.svc.allow_list.state
        body["allow_list"] = {"origin": al.origin, "entries": len(al.entries),
                              "last_error": al.last_error}
        if body["snapshot"]["status"] != "ok" and body["status"] == "ok":
            body["status"] = "degraded"
        resp.status = falcon.HTTP_200 if body["status"] == "ok" else falcon.HTTP_503
        resp.media = body

    def _snapshot(self) -> dict[str, Any]:
        out = self._serving()
        watch = self.svc.snapshot_watch
        if watch is not None:  # the periodic re-check and what changed (with alert outcomes)
            out["integrity"] = watch.state()
        return out

    def _serving(self) -> dict[str, Any]:
        try:
            snap = self.svc.snapshots.current()
        except FmwError as exc:
            return {"status": "none", "detail": str(exc)}
        created = datetime.fromisoformat(snap.created_at)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        out: dict[str, Any] = {"status": "ok", "version": snap.version, "name": snap.name,
                               "created_at": snap.created_at, "run_id": snap.manifest.run_id,
                               "age_s": round(time.time() - created.timestamp(), 3),
                               "groups": len(snap.groups())}
        if snap.fallback is not None:
            out["status"] = "fallback"
            out["detail"] = snap.fallback.message
        return out


class SlaResource:
    """GET /api/dev/sla"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.svc.gateway.sla()


class MetricsResource:
    """GET /api/dev/metrics (JSON), or Prometheus text with format=prometheus or
    Accept: text/plain"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        fmt = req.get_param("format")
        if fmt not in (None, "", "json", "prometheus"):
            raise bad_request(f"parameter 'format' must be json or prometheus, got {fmt!r}",
                              parameter="format", valid=["json", "prometheus"])
        accept = req.get_header("Accept") or ""
        wants_text = fmt == "prometheus" or (not fmt and "text/plain" in accept
                                             and "application/json" not in accept)
        if wants_text:
            resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
            resp.text = self.svc.metrics.prometheus()
        else:
            resp.media = self.svc.metrics.snapshot()
