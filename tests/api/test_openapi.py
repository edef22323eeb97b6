"""The OpenAPI document covers every route; schemathesis finds no 5xx anywhere."""

from __future__ import annotations

import re
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from api.app import ROUTES
from tests.api.conftest import client


def _openapi_path(template: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", template)


def test_every_route_is_in_the_openapi_document(server, http):
    r = http.get(f"{server.url}/api/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.1")
    assert {_openapi_path(t) for t, _ in ROUTES} == set(spec["paths"])
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            if path.startswith("/api/v1/") or path.startswith("/api/dev/"):
                assert "400" in op["responses"] and "403" in op["responses"], (method, path)
            for p in re.findall(r"\{(\w+)\}", path):
                assert any(x["name"] == p and x["in"] == "path" for x in op["parameters"])


def test_docs_page_lists_every_route(server, http):
    page = http.get(f"{server.url}/api/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for template, _ in ROUTES:
        assert f"<code>{_openapi_path(template)}</code>" in page.text


def test_unknown_routes_and_methods_are_problems(server, http):
    r = http.get(f"{server.url}/api/v2/things")
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    r = http.delete(f"{server.url}/api/v1/features")
    assert r.status_code == 405 and r.json()["status"] == 405


def _operations() -> list[str]:
    from api.openapi import build_spec
    return [f"{m.upper()} {p}" for p, ops in build_spec()["paths"].items() for m in ops]


@pytest.mark.parametrize("operation", _operations())
def test_no_generated_request_gets_a_5xx(server, env, operation):
    """schemathesis generates requests from the document (positive and negative), a bounded
    number per operation; every answer must be below 500 and errors must be problem JSON."""
    from hypothesis import given

    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    method, path = operation.split(" ", 1)
    op = schema[path][method]
    session = client(key=env.key)

    cases = st.one_of(op.as_strategy(GenerationMode.POSITIVE),
                      op.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=40, deadline=10_000, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call(base_url=server.url, session=session)
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        # 431: waitress refuses headers over 64 KiB itself (plain text), before the app
        if response.status_code >= 400 and method != "HEAD" and response.status_code != 431:
            ctype = response.headers.get("content-type", [""])[0]
            assert ctype == "application/problem+json", (
                response.status_code, response.request.url, response.request.headers,
                response.headers, response.text[:300])
            assert "Traceback" not in response.text

    run()


def test_stateful_sequences_through_the_documented_links_get_no_5xx(server, env):
    """schemathesis follows the document's links (next page via meta.cursor, a started sync
    to its run, a change page to the change's diff) with the admin key, so cursors and ids
    come from real responses; every answer must stay below 500."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    session = client(key=env.key)
    seen: list[str] = []

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):
            return {"session": session, "base_url": server.url}

        def after_call(self, response, case):
            # a started sync runs to its end before the next step, so the same steps always
            # meet the same server state (hypothesis replays sequences and checks that)
            if case.method == "POST" and response.status_code == 202:
                deadline = time.monotonic() + 120
                while server.services.launcher.busy and time.monotonic() < deadline:
                    time.sleep(0.05)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            seen.append(f"{case.method} {case.operation.path}")
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                 response.text[:500])
            # 431: waitress refuses headers over 64 KiB itself, before the application
            if response.status_code >= 400 and case.method != "HEAD" \
                    and response.status_code != 431:
                ctype = response.headers.get("content-type", [""])[0]
                assert ctype == "application/problem+json", (response.status_code,
                                                              response.text[:300])

    Machine.run(settings=settings(max_examples=25, stateful_step_count=6, deadline=None,
                                  phases=[Phase.explicit, Phase.generate],
                                  derandomize=True, database=None,
                                  suppress_health_check=list(HealthCheck)))
    # the links were followed: pages after the first, runs from a started sync
    assert any(s.startswith("GET /api/dev/runs/{run_id}") for s in seen), sorted(set(seen))
    assert any(s.startswith("GET /api/v1/") for s in seen), sorted(set(seen))
