"""``/api/openapi.json`` and a self-contained HTML page rendered from it (no CDN needed)."""

from __future__ import annotations

import html
from typing import Any

import falcon

from api.openapi import build_spec
from api.services import Services


def _groups(svc: Services) -> list[str]:
    try:
        return list(svc.snapshots.current().groups())
    except Exception:  # nothing published yet: the spec is still valid without examples
        return []


class OpenApi:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = build_spec(_groups(self.svc))
        resp.cache_control = ["private", "no-cache"]


def render_page(spec: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(spec['info']['title'])}</title><style>"
        "body{font:15px/1.45 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem}"
        "code{background:#f3f3f3;padding:0 .25em}h3{margin-bottom:.2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em;"
        "text-align:left;vertical-align:top}.m{font-weight:bold;text-transform:uppercase}"
        "</style></head><body>",
        f"<h1>{e(spec['info']['title'])}</h1><p>{e(spec['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a> (OpenAPI 3.1). "
        "dev endpoints need an admin address and <code>Authorization: Bearer KEY</code> "
        "(<code>fmw apikey create NAME</code>).</p>",
    ]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            parts.append(f"<h3><span class='m'>{e(method)}</span> <code>{e(path)}</code></h3>"
                         f"<p>{e(op.get('summary', ''))}</p>")
            if op.get("parameters"):
                parts.append("<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>")
                for p in op["parameters"]:
                    parts.append(f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}"
                                 f"</td><td>{e(p.get('description', ''))}</td></tr>")
                parts.append("</table>")
            codes = ", ".join(sorted(op.get("responses", {})))
            parts.append(f"<p>Responses: {e(codes)}</p>")
    parts.append("<h2 id='problems'>Errors</h2><p>Every error is <code>application/problem+json"
                 "</code> (RFC 9457): <code>type</code>, <code>title</code>, <code>status"
                 "</code>, <code>detail</code>, <code>instance</code>, plus members such as "
                 "<code>valid_groups</code>, <code>valid_fields</code>, <code>valid_operators"
                 "</code> or <code>run_id</code>.</p></body></html>")
    return "".join(parts)


class DocsPage:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = render_page(build_spec(_groups(self.svc)))
