"""The Falcon application: `create_app(settings, services)` for tests, `get_app()` for waitress.

Routes (every one is described in ``GET /api/openapi.json``)::

    GET  /api/v1/features, /api/v1/all                     every feature (CSV by default)
    GET  /api/v1/features/{feature_group}, /api/v1/{feature_group}
    POST /api/dev/sync/run                                  start a sync (202 + Location)
    GET  /api/dev/runs, /api/dev/runs/summary, /api/dev/runs/{run_id}
    GET  /api/dev/changes, /api/dev/changes/diff
    GET|PUT /api/dev/allow_list (= /api/dev/slsi/allow_list), GET|PUT /api/dev/roles
    GET  /api/dev/health, /api/dev/metrics, /api/dev/sla
    GET  /api/me; GET|POST /api/me/tokens; DELETE /api/me/tokens/{token}   (sign-on only)
    GET  /api/openapi.json, /api/docs
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import falcon
import falcon.media

from api import dev_admin, dev_runs, docs, errors, me, v1
from api.compress import Compress
from api.middleware import Guard, Observe
from api.params import json_default
from api.services import Services, build_services
from fmw.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: (uri template, resource factory) — also the list the OpenAPI test checks against.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/features", "v1.all"),
    ("/api/v1/all", "v1.all"),
    ("/api/v1/features/{feature_group}", "v1.group"),
    ("/api/v1/{feature_group}", "v1.group"),
    ("/api/dev/sync/run", "dev.sync_run"),
    ("/api/dev/runs", "dev.runs"),
    ("/api/dev/runs/summary", "dev.runs_summary"),
    ("/api/dev/runs/{run_id:int}", "dev.run_one"),
    ("/api/dev/changes", "dev.changes"),
    ("/api/dev/changes/diff", "dev.change_diff"),
    ("/api/dev/allow_list", "dev.allow_list"),
    ("/api/dev/slsi/allow_list", "dev.allow_list"),
    ("/api/dev/roles", "dev.roles"),
    ("/api/dev/health", "dev.health"),
    ("/api/dev/metrics", "dev.metrics"),
    ("/api/dev/sla", "dev.sla"),
    ("/api/me", "me.who"),
    ("/api/me/tokens", "me.tokens"),
    ("/api/me/tokens/{token}", "me.token"),
    ("/api/openapi.json", "docs.openapi"),
    ("/api/docs", "docs.page"),
)


def create_app(settings: Settings, services: Services) -> falcon.App:
    """Build the WSGI app from injected collaborators (no globals, nothing read from the
    environment)."""
    middleware: list[Any] = [Compress(), Observe(services), Guard(services)]
    app = falcon.App(middleware=middleware,
                     cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_form_urlencoded = False
    dumps = functools.partial(json.dumps, ensure_ascii=False, default=json_default,
                              separators=(",", ":"))
    handler = falcon.media.JSONHandler(dumps=dumps)
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.req_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler()
    errors.register(app)
    resources = {
        "v1.all": v1.Features(services, grouped=False),
        "v1.group": v1.Features(services, grouped=True),
        "dev.sync_run": dev_runs.SyncRun(services),
        "dev.runs": dev_runs.Runs(services),
        "dev.runs_summary": dev_runs.RunsSummary(services),
        "dev.run_one": dev_runs.RunOne(services),
        "dev.changes": dev_runs.Changes(services),
        "dev.change_diff": dev_runs.ChangeDiff(services),
        "dev.allow_list": dev_admin.AllowList(services),
        "dev.roles": dev_admin.Roles(services),
        "dev.health": dev_admin.Health(services),
        "dev.metrics": dev_admin.MetricsResource(services),
        "dev.sla": dev_admin.SlaResource(services),
        "me.who": me.Me(services),
        "me.tokens": me.Tokens(services),
        "me.token": me.Token(services),
        "docs.openapi": docs.OpenApi(services),
        "docs.page": docs.DocsPage(services),
    }
    for template, name in ROUTES:
        app.add_route(template, resources[name])
    v1.warm(services)  # the current version's full CSV download, written in the background
    return app


def get_app() -> falcon.App:
    """The factory waitress calls (``waitress-serve --call api.app:get_app``): settings from
    fmw.toml and the environment, as `fmw serve` would read them."""
    settings = load_settings()
    return create_app(settings, build_services(settings))
