"""dev API: start a sync, the run history, the Home summary, the change history and diffs."""

from __future__ import annotations

from typing import Any

import falcon

from api import params
from api.errors import Problem, bad_request
from api.services import Services
from ledger.history import ChangeFilter

SUMMARY_DAYS = ("1", "7", "14", "30")
OPS = ("C", "U", "D")
IDENTITY_FIELDS = ("feature_group", "feature_name", "mcc", "mnc", "value", "owner", "operator")


def _not_found(what: str) -> Problem:
    return Problem(404, "Not Found", f"{what} does not exist", kind="not-found")


class SyncRun:
    """POST /api/dev/sync/run"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        launched = self.svc.launcher.launch()
        url = f"/api/dev/runs/{launched.run_id}"
        req.context.audit_detail = f"run {launched.run_id}"
        resp.status = falcon.HTTP_202
        resp.location = url
        resp.media = {"run_id": launched.run_id, "status_url": url,
                      "finished": launched.finished}


class Runs:
    """GET /api/dev/runs"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = params.integer(req, "limit", 50, 1, 1000) or 50
        items = self.svc.gateway.list_runs(limit)
        resp.media = {"data": [r.as_json() for r in items], "meta": {"count": len(items)}}


class RunOne:
    """GET /api/dev/runs/{run_id}"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response, run_id: int) -> None:
        limit = params.integer(req, "errors_limit", 1000, 0, 100_000) or 0
        run, errors = self.svc.gateway.run_with_errors(run_id, limit)
        if run is None:
            raise _not_found(f"run {run_id}")
        resp.media = {**run.as_json(), "quarantined": errors,
                      "running": run.status == "running"}


class RunsSummary:
    """GET /api/dev/runs/summary?days=1|7|14|30&yesterday=true|false"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        days = int(params.choice(req, "days", SUMMARY_DAYS, "7") or "7")
        yesterday = params.boolean(req, "yesterday", False)
        s = self.svc.gateway.summary(days, include_today=not yesterday)
        resp.media = {
            "days": s.days, "from": s.first_day.isoformat(), "to": s.last_day.isoformat(),
            "timezone": self.svc.settings.timezone, "totals": s.totals,
            "previous": s.previous, "per_day": [d.as_json() for d in s.per_day],
        }


def change_filter(req: falcon.Request, limit_default: int = 100) -> ChangeFilter:
    since, until = params.timestamp(req, "since"), params.timestamp(req, "until")
    if since and until and since >= until:
        raise bad_request("'since' must be before 'until'", parameter="since")
    identity = params.text(req, "identity", 64)
    if identity is not None and not all(c in "0123456789abcdefABCDEF" for c in identity):
        raise bad_request("'identity' must be a hex identity hash or a prefix of one",
                          parameter="identity")
    group = params.text(req, "group", 128)
    return ChangeFilter(
        since=since, until=until, run_id=params.integer(req, "run", None, 1, 2**62),
        group=group, identity=identity, op=params.choice(req, "op", OPS, None),
        limit=params.integer(req, "limit", limit_default, 1, 1000) or limit_default,
        after_id=params.integer(req, "cursor", None, 0, 2**62),
    )


class Changes:
    """GET /api/dev/changes (keyset-paged by change id, oldest first)"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        f = change_filter(req)
        rows = self.svc.gateway.changes(f)
        nxt = str(rows[-1]["id"]) if len(rows) == f.limit else None
        meta: dict[str, Any] = {"count": len(rows), "next": None}
        if nxt is not None:
            meta["next"] = _with_param(req, "cursor", nxt)
            resp.append_header("Link", f'<{meta["next"]}>; rel="next"')
            meta["cursor"] = nxt
        resp.media = {"data": rows, "meta": meta}


class ChangeDiff:
    """GET /api/dev/changes/diff?id=N, or ?from=V1&to=V2 (two snapshot versions)"""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        change_id = params.integer(req, "id", None, 1, 2**62)
        v_from = params.integer(req, "from", None, 1, 2**62)
        v_to = params.integer(req, "to", None, 1, 2**62)
        if change_id is not None and (v_from is not None or v_to is not None):
            raise bad_request("give either 'id' (one change) or 'from' and 'to' (two snapshot "
                              "versions), not both", parameter="id")
        if change_id is not None:
            resp.media = self._one(change_id)
            return
        if v_from is None or v_to is None:
            raise bad_request("give 'id' (one change) or both 'from' and 'to' (snapshot "
                              "versions)", parameter="id")
        from api.versions_diff import diff_versions
        resp.media = diff_versions(self.svc, req, v_from, v_to)

    def _one(self, change_id: int) -> dict[str, Any]:
        c = self.svc.gateway.change(change_id)
        if c is None:
            raise _not_found(f"change {change_id}")
        before, after = c.pop("before_json") or {}, c.pop("after_json") or {}
        return {**c, "identity": {k: (after or before).get(k) for k in IDENTITY_FIELDS},
                "fields": field_diff(before, after, c.get("changed_fields"))}


#: Bookkeeping columns that change with every write and are not "the data".
_NOISE = frozenset({"row_hash", "last_run_id", "last_changed_at", "first_run_id", "first_seen_at"})


def field_diff(before: dict[str, Any], after: dict[str, Any],
               changed: list[str] | None = None) -> list[dict[str, Any]]:
    """Field-level before/after: the changed fields of an update, every field of C or D."""
    if changed:
        names = list(changed)
    else:
        names = sorted((set(before) | set(after)) - _NOISE)
        if before and after:
            names = [n for n in names if before.get(n) != after.get(n)]
    return [{"field": n, "before": before.get(n), "after": after.get(n)} for n in names]


def _with_param(req: falcon.Request, name: str, value: str) -> str:
    from urllib.parse import urlencode
    pairs = [(k, v) for k, vs in req.params.items() if k != name
             for v in (vs if isinstance(vs, list) else [vs])]
    pairs.append((name, value))
    return f"{req.path}?{urlencode(pairs)}"
