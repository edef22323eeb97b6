"""The one place where errors become HTTP: RFC 9457 problem JSON, never a traceback.

`register(app)` installs an error handler per error family and the serializer that renders
every `falcon.HTTPError` (ours, and Falcon's own 404/405/400) as ``application/problem+json``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from fmw.errors import (
    ConfigError,
    DatabaseUnavailable,
    FmwError,
    SchemaBehind,
    SyncAlreadyRunning,
    SyncFailed,
)
from ledger.access import InvalidAllowList
from query import errors as q
from query.snapshot import NoGoodVersion

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "/api/docs#problem-"


class Problem(falcon.HTTPError):
    """An HTTP error with RFC 9457 members; `extensions` become extra top-level members."""

    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 kind: str | None = None, headers: dict[str, str] | None = None,
                 **extensions: Any) -> None:
        super().__init__(status, title=title, description=detail, headers=headers)
        self.kind = kind or title.lower().replace(" ", "-")
        self.extensions = extensions


def bad_request(detail: str, **ext: Any) -> Problem:
    return Problem(400, "Bad Request", detail, kind="bad-request", **ext)


def _problem_body(req: falcon.Request, exc: falcon.HTTPError) -> dict[str, Any]:
    kind = getattr(exc, "kind", None) or str(exc.title or "error").lower().replace(" ", "-")
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": exc.title,
        "status": exc.status_code,
        "detail": exc.description or exc.title,
        "instance": req.path,
    }
    body.update(getattr(exc, "extensions", {}) or {})
    return body


def serialize(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    resp.content_type = PROBLEM_JSON
    resp.data = json.dumps(_problem_body(req, exc), ensure_ascii=False, default=str).encode()
    resp.append_header("Vary", "Accept")


def _raise(problem: Problem) -> None:
    raise problem


def _query_error(req: falcon.Request, resp: falcon.Response, exc: q.QueryError,
                 params: dict[str, Any]) -> None:
    if isinstance(exc, q.UnknownGroup):
        _raise(Problem(404, "Unknown Feature Group", str(exc), kind="unknown-group",
                       group=exc.group, valid_groups=list(exc.valid)))
    if isinstance(exc, q.UnknownVersion):
        _raise(Problem(404, "Unknown Snapshot Version", str(exc), kind="unknown-version",
                       requested=exc.requested, valid_versions=[str(v) for v in exc.valid]))
    if isinstance(exc, q.UnknownField):
        _raise(Problem(400, "Unknown Field", str(exc), kind="unknown-field", field=exc.field,
                       valid_fields=list(exc.valid)))
    if isinstance(exc, q.UnknownOperator):
        _raise(Problem(400, "Unknown Operator", str(exc), kind="unknown-operator",
                       operator=exc.op, field=exc.field, valid_operators=list(exc.valid)))
    if isinstance(exc, q.UnknownTable):
        _raise(Problem(404, "Unknown Table", str(exc), kind="unknown-table", table=exc.table,
                       valid_tables=list(exc.valid)))
    if isinstance(exc, q.BadValue):
        _raise(Problem(400, "Bad Value", str(exc), kind="bad-value", field=exc.field,
                       reason=exc.reason))
    if isinstance(exc, q.OutOfScope):
        _raise(Problem(403, "Forbidden", str(exc), kind="out-of-scope",
                       valid_tables=list(exc.valid)))
    if isinstance(exc, q.BadCursor):
        _raise(Problem(400, "Bad Cursor", str(exc), kind="bad-cursor"))
    if isinstance(exc, q.SqlRejected | q.ExportError):
        _raise(Problem(400, "Bad Request", str(exc), kind="bad-request"))
    if isinstance(exc, q.NoSnapshot):
        detail = ("no published snapshot version passes its integrity check; see the server "
                  "log or /api/dev/health" if isinstance(exc, NoGoodVersion)
                  else "no snapshot has been published yet; run a sync (`fmw sync` or POST "
                  "/api/dev/sync/run)")
        _raise(Problem(503, "No Snapshot", detail, kind="no-snapshot",
                       headers={"Retry-After": "60"}))
    if isinstance(exc, q.QueryTimeout):
        _raise(Problem(503, "Query Timeout", str(exc), kind="query-timeout",
                       headers={"Retry-After": "5"}))
    if isinstance(exc, q.CorruptSnapshot):
        log.error("damaged snapshot: %s", exc)
        _raise(Problem(503, "Snapshot Unavailable", f"snapshot v{exc.version:06d} failed its "
                       "integrity check; request the current version instead",
                       kind="snapshot-unavailable"))
    _raise(Problem(400, "Bad Request", str(exc), kind="bad-request"))


def _fmw_error(req: falcon.Request, resp: falcon.Response, exc: FmwError,
               params: dict[str, Any]) -> None:
    if isinstance(exc, DatabaseUnavailable):
        log.warning("ledger database unavailable for %s %s: %s", req.method, req.path, exc)
        _raise(Problem(503, "Database Unavailable", "the ledger database (PostgreSQL) is not "
                       "reachable; dev endpoints need it (the v1 read API keeps serving)",
                       kind="database-unavailable", headers={"Retry-After": "30"}))
    if isinstance(exc, SchemaBehind):
        _raise(Problem(503, "Schema Behind", str(exc), kind="schema-behind"))
    if isinstance(exc, SyncAlreadyRunning):
        ext: dict[str, Any] = {"run_id": exc.run_id}
        headers = {}
        if exc.run_id is not None:
            ext["run_url"] = f"/api/dev/runs/{exc.run_id}"
            headers["Location"] = ext["run_url"]
        _raise(Problem(409, "Sync Already Running", str(exc), kind="sync-running",
                       headers=headers, **ext))
    if isinstance(exc, SyncFailed):
        _raise(Problem(409, "Sync Failed", str(exc), kind="sync-failed", run_id=exc.run_id))
    if isinstance(exc, InvalidAllowList):
        _raise(Problem(400, "Invalid Allow List", str(exc), kind="invalid-allow-list",
                       index=exc.index, field=exc.field))
    if isinstance(exc, ConfigError):
        log.error("configuration error serving %s %s: %s", req.method, req.path, exc)
        _raise(Problem(500, "Configuration Error", "the server's configuration is invalid; "
                       "see its log", kind="configuration-error"))
    log.error("unhandled FMW error on %s %s: %s", req.method, req.path, exc)
    _raise(Problem(500, "Internal Server Error", str(exc), kind="internal"))


def _unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception,
                params: dict[str, Any]) -> None:
    if isinstance(exc, falcon.HTTPError):  # Falcon's own (404, 405, 413 ...): keep them
        raise exc
    log.exception("unexpected error on %s %s", req.method, req.path)
    _raise(Problem(500, "Internal Server Error", "an unexpected error occurred; it was logged",
                   kind="internal"))


def register(app: falcon.App) -> None:
    """Install the handlers (most specific last: Falcon picks the nearest class)."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(FmwError, _fmw_error)
    app.add_error_handler(q.QueryError, _query_error)
    app.set_error_serializer(serialize)
