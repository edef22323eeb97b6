"""The OpenAPI 3.1 description of every route, parameter and error (served at
``/api/openapi.json``; the docs page is rendered from it)."""

from __future__ import annotations

from typing import Any

from query.encoders import CONTENT_TYPES, FORMATS
from query.paging import MAX_CURSOR_CHARS
from query.plan import MAX_OFFSET

PROBLEM = {"$ref": "#/components/responses/Problem"}
_ERRORS_V1 = {"400": PROBLEM, "403": PROBLEM, "404": PROBLEM, "406": PROBLEM,
              "413": PROBLEM, "414": PROBLEM, "503": PROBLEM}
_ERRORS_DEV = {"400": PROBLEM, "401": PROBLEM, "403": PROBLEM, "404": PROBLEM, "413": PROBLEM,
               "414": PROBLEM, "429": PROBLEM, "503": PROBLEM}


def _q(name: str, schema: dict[str, Any], desc: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": desc, **extra}


def _json(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"application/json": {"schema": schema or {"type": "object"}}}


_V1_PARAMS = [
    _q("format", {"type": "string", "enum": list(FORMATS)},
       "Response format (default csv, or from Accept)."),
    _q("download", {"type": "boolean"}, "Content-Disposition: attachment with a file name "
       "such as features_volte_v000123.csv."),
    _q("version", {"type": "string", "pattern": "^(current|[vV]?[0-9]{1,12})$"},
       "Read a kept snapshot version (123 or v000123); default current."),
    _q("as_of", {"type": "string"}, "ISO date or date-time: the snapshot valid then."),
    _q("columns", {"type": "string"}, "Comma-separated columns to return."),
    _q("order", {"type": "string"}, "Comma-separated sort columns, '-' for descending, "
       "e.g. -updated_at,feature_name."),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000},
       "Page size (JSON default 100). Other formats stream every row unless given."),
    _q("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, "Rows to skip."),
    _q("cursor", {"type": "string", "maxLength": MAX_CURSOR_CHARS},
       "Opaque cursor of the next page (from Link / meta.next)."),
    _q("q", {"type": "string"}, "Free-text search in feature_name, value, notes, operator."),
    _q("bom", {"type": "boolean"}, "CSV: start with a UTF-8 BOM (for Excel)."),
    _q("neutralise", {"type": "boolean"}, "CSV/XLSX: prefix ' to cells a spreadsheet would "
       "run as formulas."),
    {"name": "filters", "in": "query", "required": False, "style": "form", "explode": True,
     "schema": {"type": "object", "additionalProperties": {"type": "string"}},
     "description": "Filters: field=value, field=a,b, field__op=value with op one of in, ne, "
                    "contains, icontains, startswith, gt, gte, lt, lte, isnull. An unknown "
                    "field or operator is a 400 naming the valid ones."},
]

_V1_HEADERS = {
    "X-Total-Count": {"schema": {"type": "integer"}, "description": "Rows matching the filters."},
    "X-Snapshot-Version": {"schema": {"type": "string"}, "description": "Snapshot version read."},
    "ETag": {"schema": {"type": "string"}},
    "Last-Modified": {"schema": {"type": "string"}},
    "Link": {"schema": {"type": "string"}, "description": 'rel="next" when more rows follow.'},
}


def _next_page(op_id: str, grouped: bool) -> dict[str, Any]:
    """The link a client (and schemathesis' stateful tests) follows to the next JSON page."""
    parameters = {"cursor": "$response.body#/meta/cursor", "format": "json"}
    if grouped:
        parameters["feature_group"] = "$request.path.feature_group"
    return {"NextPage": {"operationId": op_id, "parameters": parameters,
                         "description": "The next page of the same query (JSON)."}}


def _v1_get(summary: str, grouped: bool, op_id: str) -> dict[str, Any]:
    params = list(_V1_PARAMS)
    if grouped:
        params.insert(0, {"name": "feature_group", "in": "path", "required": True,
                          "schema": {"type": "string"},
                          "description": "A feature group of the snapshot; an unknown one is "
                                         "a 404 listing the valid groups."})
    content = {ctype: {"schema": {"type": "string"}} for fmt, ctype in CONTENT_TYPES.items()
               if fmt != "json"}
    content[CONTENT_TYPES["json"]] = {"schema": {"$ref": "#/components/schemas/FeaturePage"}}
    return {"summary": summary, "operationId": op_id, "tags": ["v1"], "parameters": params,
            "responses": {
        "200": {"description": "Features", "headers": _V1_HEADERS, "content": content,
                "links": _next_page(op_id, grouped)},
        "304": {"description": "Not modified (If-None-Match / If-Modified-Since)"},
        **_ERRORS_V1}}


def _dev(summary: str, responses: dict[str, Any] | None = None,
         params: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": ["dev"], "security": [{"apiKey": []}],
            "parameters": params or [], **extra,
            "responses": {**(responses or {"200": {"description": "OK",
                                                   "content": _json()}}), **_ERRORS_DEV}}


def _me(summary: str, responses: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A /api/me operation: the provider's sign-on (auth.mode = "oidc"); 404 when it is off."""
    return {"summary": summary, "tags": ["me"], "security": [{"signOn": []}],
            "parameters": params or [], **extra,
            "responses": {**(responses or {"200": {"description": "OK", "content": _json()}}),
                          "401": PROBLEM, "403": PROBLEM, "404": PROBLEM}}


_CHANGE_PARAMS = [
    _q("since", {"type": "string", "format": "date-time"}, "Changes at or after (ISO 8601)."),
    _q("until", {"type": "string", "format": "date-time"}, "Changes before (ISO 8601)."),
    _q("run", {"type": "integer", "minimum": 1}, "Only this run."),
    _q("group", {"type": "string", "maxLength": 128}, "Only this feature group."),
    _q("op", {"type": "string", "enum": ["C", "U", "D"]}, "Create, update or delete."),
    _q("identity", {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"},
       "Identity hash or a prefix."),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (100)."),
    _q("cursor", {"type": "integer", "minimum": 0}, "Change id to continue after."),
]

_ROLES_BODY = {"type": "object", "required": ["entries"], "properties": {"entries": {
    "type": "array", "maxItems": 1000, "items": {
        "type": "object", "required": ["group", "role"], "properties": {
            "group": {"type": "string", "minLength": 1, "maxLength": 256},
            "role": {"type": "string", "enum": ["viewer", "scoped", "admin"]},
            "feature_groups": {"type": "array", "items": {"type": "string"}},
            "operators": {"type": "array", "items": {"type": "string"}},
            "mccs": {"type": "array", "items": {"type": "string"}}}}}}}

_ALLOW_BODY = {"type": "object", "required": ["entries"], "properties": {"entries": {
    "type": "array", "items": {"$ref": "#/components/schemas/AllowEntry"}}}}


def build_spec(groups: list[str] | None = None) -> dict[str, Any]:
    """The whole document; `groups` (current snapshot) are listed in the descriptions."""
    known = ", ".join(groups or []) or "(none published yet)"
    paths: dict[str, Any] = {
        "/api/v1/features": {"get": _v1_get("Every feature", False, "listFeatures")},
        "/api/v1/all": {"get": _v1_get("Every feature (alias of /api/v1/features)", False,
                                       "listAll")},
        "/api/v1/features/{feature_group}": {
            "get": _v1_get(f"Features of one group ({known})", True, "listGroup")},
        "/api/v1/{feature_group}": {
            "get": _v1_get("Features of one group (short form)", True, "listGroupShort")},
        "/api/dev/sync/run": {"post": _dev(
            "Start a sync in the background", {
                "202": {"description": "Started; Location is the run",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": _json(), "links": {"TheRun": {
                            "operationId": "getRun",
                            "parameters": {"run_id": "$response.body#/run_id"}}}},
                "409": PROBLEM})},
        "/api/dev/runs": {"get": _dev("Run history, newest first", params=[
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "How many (50).")])},
        "/api/dev/runs/summary": {"get": _dev("Totals from daily_counts for the Home cards", params=[
            _q("days", {"type": "string", "enum": ["1", "7", "14", "30"]}, "Window (7)."),
            _q("yesterday", {"type": "boolean"}, "End the window yesterday.")])},
        "/api/dev/runs/{run_id}": {"get": _dev("One run with its quarantined rows",
                                               operationId="getRun", params=[
            {"name": "run_id", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1}},
            _q("errors_limit", {"type": "integer", "minimum": 0, "maximum": 100000},
               "Quarantined rows to include (1000).")])},
        "/api/dev/changes": {"get": _dev("Change history, oldest first (paged)", {
            "200": {"description": "A page of changes", "content": _json(), "links": {
                "NextPage": {"operationId": "listChanges",
                             "parameters": {"cursor": "$response.body#/meta/cursor"}},
                "TheChange": {"operationId": "changeDiff",
                              "parameters": {"id": "$response.body#/data/0/id"}}}}},
            params=_CHANGE_PARAMS, operationId="listChanges")},
        "/api/dev/changes/diff": {"get": _dev("Field-level before/after of one change, or "
                                              "between two snapshot versions",
                                              operationId="changeDiff", params=[
            _q("id", {"type": "integer", "minimum": 1}, "One change."),
            _q("from", {"type": "integer", "minimum": 1}, "Older snapshot version."),
            _q("to", {"type": "integer", "minimum": 1}, "Newer snapshot version."),
            _q("group", {"type": "string"}, "Only this feature group (versions)."),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Rows (100)."),
            _q("offset", {"type": "integer", "minimum": 0}, "Rows to skip.")])},
        "/api/dev/health": {"get": _dev("Database, snapshot, last run, scheduler", {
            "200": {"description": "Healthy", "content": _json()},
            "503": {"description": "Degraded (body says what)", "content": _json()}})},
        "/api/dev/metrics": {"get": _dev("Request counts and p50/p95/p99 per route", {
            "200": {"description": "JSON, or Prometheus text", "content": {
                **_json(), "text/plain": {"schema": {"type": "string"}}}}}, params=[
            _q("format", {"type": "string", "enum": ["json", "prometheus"]}, "Output.")])},
        "/api/dev/sla": {"get": _dev("SLA definitions, open and recent violations", {
            "200": {"description": "SLA report", "content": _json()}})},
        "/api/me": {"get": _me("Who am I: name, role, row scope, how I signed in")},
        "/api/me/tokens": {
            "get": _me("My personal API tokens (never their secrets)"),
            "post": _me("Make a personal API token (the secret is in the answer, once)", {
                "201": {"description": "Made", "content": _json()}, "400": PROBLEM},
                requestBody={"required": True, "content": _json({
                    "type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 100},
                        "days": {"type": "integer", "minimum": 1}}})})},
        "/api/me/tokens/{token}": {"delete": _me("Revoke one of my tokens", {
            "200": {"description": "Revoked", "content": _json()}, "404": PROBLEM}, params=[
            {"name": "token", "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": 20}, "description": "Prefix or id."}])},
        "/api/openapi.json": {"get": {"summary": "This document", "tags": ["docs"],
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": _json()}}}},
        "/api/docs": {"get": {"summary": "Documentation page", "tags": ["docs"], "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {
                "type": "string"}}}}}}},
    }
    allow_ops = {
        "get": _dev("The address allow list"),
        "put": _dev("Replace the address allow list (applied at once)",
                    requestBody={"required": True, "content": _json(_ALLOW_BODY)}),
    }
    paths["/api/dev/allow_list"] = allow_ops
    paths["/api/dev/roles"] = {
        "get": _dev("The role map (sign-on): the config's entries and the stored ones"),
        "put": _dev("Replace the stored role map entries (the config's stay)",
                    requestBody={"required": True, "content": _json(_ROLES_BODY)}),
    }
    paths["/api/dev/slsi/allow_list"] = {
        k: {**v, "summary": v["summary"] + " (alias)"} for k, v in allow_ops.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "FMW API", "version": "1",
                 "description": "Feature status across operators. v1 is read-only and serves "
                                "the published snapshot (ETag, Last-Modified, If-None-Match -> "
                                "304, gzip; `Cache-Control: no-cache` on a request bypasses the "
                                "server's page and download caches); dev is for admins (admin "
                                "address and API key), rate limited per address, and audited. "
                                "Errors are RFC 9457 problem JSON."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "`fmw apikey create NAME`"},
                "signOn": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "With auth.mode = 'oidc': an access token from the "
                                          "identity provider, or a personal API token "
                                          "(fmwp_..., read-only v1)"}},
            "responses": {"Problem": {"description": "RFC 9457 problem", "content": {
                "application/problem+json": {"schema": {
                    "$ref": "#/components/schemas/Problem"}}}}},
            "schemas": {
                "Problem": {"type": "object", "required": ["type", "title", "status"],
                            "properties": {"type": {"type": "string"},
                                           "title": {"type": "string"},
                                           "status": {"type": "integer"},
                                           "detail": {"type": "string"},
                                           "instance": {"type": "string"}}},
                "FeaturePage": {"type": "object", "required": ["data", "meta"], "properties": {
                    "data": {"type": "array", "items": {"type": "object"}},
                    "meta": {"type": "object", "properties": {
                        "total": {"type": "integer"}, "version": {"type": "integer"},
                        "next": {"type": ["string", "null"]}}}}},
                "AllowEntry": {"type": "object", "required": ["cidr"], "properties": {
                    "cidr": {"type": "string", "examples": ["10.20.0.0/16"]},
                    "role": {"type": "string", "enum": ["user", "admin"]},
                    "note": {"type": "string", "maxLength": 500}}},
            },
        },
    }
