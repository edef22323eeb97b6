"""A scoped user's download from the explorer is audited with the user, before it streams, as
the API audits their exports; without its audit row it is not sent (issue 14).

The explorer's download route (`ui.server`) runs in-process under Starlette's test client,
against the real ledger of `conftest` (its audit log in PostgreSQL).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator

import psycopg
import pytest
from starlette.applications import Starlette

with warnings.catch_warnings():  # "install httpx2": the client works as it is with httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from query import QuerySpec
from query.scope import RowScope, ScopeRule
from tests.ui.conftest import UiEnv, day2_rows
from ui import context
from ui.downloads import TICKETS, link
from ui.server import routes
from ui.usage import LedgerIO

SCOPE = RowScope.of([ScopeRule.of(("volte", "rcs"), (), ("450",))])
IN_SCOPE = sum(1 for r in day2_rows() if r[0] in ("volte", "rcs") and r[2] == "450")
BASE = "/streamlit/"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(Starlette(routes=routes(BASE)), client=("127.0.0.1", 50000)) as c:
        yield c


def audit_rows(pg_url: str, env: UiEnv) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(
            f'SELECT seq, client, method, path, query, status, detail, subject, user_name '
            f'FROM "{env.settings.schema}".audit_log ORDER BY seq').fetchall()


def issue(env: UiEnv, scope: RowScope | None, ledger: LedgerIO | None, *,
          session: str = "audit-test") -> str:
    token = TICKETS.issue(context.engine(env.settings), env.versions[1],
                          QuerySpec(scope=scope), "csv", tz="UTC",
                          name="features-all-v000002.csv", session=session, browser=None,
                          subject="carol-sub", user_name="Carol Scoped", ledger=ledger)
    return link(BASE, token)


def test_a_scoped_download_writes_one_audit_row_with_the_user_first(
        ui_env: UiEnv, pg_url: str, client: TestClient):
    before = audit_rows(pg_url, ui_env)
    url = issue(ui_env, SCOPE, LedgerIO(ui_env.settings))
    r = client.get(url, headers={"X-Forwarded-For": "10.9.8.7"})
    assert r.status_code == 200, r.text
    assert len(r.content.decode("utf-8-sig").splitlines()) == IN_SCOPE + 1
    new = audit_rows(pg_url, ui_env)[len(before):]
    assert [row[1:] for row in new] == [(
        "10.9.8.7", "GET", "/streamlit/fmw/export", "", 200,
        "explorer download csv features-all-v000002.csv by a scoped user "
        "(groups=rcs,volte mccs=450)", "carol-sub", "Carol Scoped")]
    assert url.rsplit("/", 1)[1] not in str(new)  # the token is never written


def test_an_unscoped_download_is_not_audited(ui_env: UiEnv, pg_url: str, client: TestClient):
    before = audit_rows(pg_url, ui_env)
    r = client.get(issue(ui_env, None, None, session="unscoped"))
    assert r.status_code == 200
    assert audit_rows(pg_url, ui_env) == before


@pytest.mark.parametrize("broken", ["database down", "no ledger"])
def test_without_its_audit_row_a_scoped_download_is_refused(
        ui_env: UiEnv, pg_url: str, client: TestClient, broken: str):
    down = dataclasses.replace(ui_env.settings, database_url="postgresql://fmw@127.0.0.1:1/fmw")
    ledger = LedgerIO(down) if broken == "database down" else None
    before = audit_rows(pg_url, ui_env)
    r = client.get(issue(ui_env, SCOPE, ledger, session=broken))
    assert r.status_code == 503
    assert "not downloaded: its audit record could not be written" in r.text
    assert "feature_group" not in r.text  # no row of the file
    assert audit_rows(pg_url, ui_env) == before
