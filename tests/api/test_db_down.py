"""PostgreSQL down: v1 keeps serving the snapshot, dev answers 503, the allow list holds.

Uses a dedicated embedded PostgreSQL that the test stops and starts (never the shared one).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from fmw.errors import DatabaseUnavailable
from fmw.settings import Settings
from ledger.db import database_url, revive_embedded
from tests.api.conftest import TOTAL, Env, build_env, client, with_api


def pg_ctl(boot: Settings, action: str) -> None:
    """Stop (fast) or start the dedicated server with its own pg_ctl."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl as run_pg_ctl
    if action == "stop":
        srv = pgserver.get_server(boot.pg_dir, cleanup_mode=None)
        run_pg_ctl(["-w", "-m", "fast", "stop"], pgdata=srv.pgdata, user=srv.system_user)
    else:  # as the service host's watch does; on Windows the server keeps its TCP port
        revive_embedded(boot)


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Env]]:
    boot = Settings(data_dir=tmp_path_factory.mktemp("own-pg"))
    try:
        url = database_url(boot)
    except DatabaseUnavailable:  # initdb can fail on a busy machine; once more, from scratch
        boot = Settings(data_dir=tmp_path_factory.mktemp("own-pg-retry"))
        url = database_url(boot)
    env = build_env(url, tmp_path_factory.mktemp("own-api"))
    yield boot, env
    pg_ctl(boot, "stop")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_unreachable_database_v1_200_dev_503(env, make_server):
    dead = env.settings_with(
        FMW_DATABASE_URL=f"postgresql://fmw@127.0.0.1:{_closed_port()}/fmw")
    srv = make_server(dead)
    r = client().get(f"{srv.url}/api/v1/features")
    assert r.status_code == 200 and r.headers["X-Total-Count"] == str(TOTAL)
    for method, path in (("GET", "/api/dev/runs"), ("GET", "/api/dev/health"),
                         ("POST", "/api/dev/sync/run"), ("GET", "/api/dev/metrics")):
        d = client(key=env.key).request(method, srv.url + path)
        assert d.status_code == 503, (path, d.text)
        assert d.headers["Content-Type"] == "application/problem+json"
        assert d.json()["title"] == "Database Unavailable" and d.headers["Retry-After"]
        assert "PostgreSQL" in d.json()["detail"] and "Traceback" not in d.text


@pytest.mark.slow
def test_stopping_postgres_under_a_running_server(own_pg, make_server):
    boot, env = own_pg
    settings = with_api(env.settings, api_allowlist_refresh_s=0.2)
    srv = make_server(settings)
    admin = client(key=env.key)
    r = admin.put(f"{srv.url}/api/dev/allow_list", json={"entries": [{"cidr": "127.0.0.2"}]})
    assert r.status_code == 200
    pg_ctl(boot, "stop")
    try:
        time.sleep(0.5)  # at least one failed background refresh of the allow list
        assert client().get(f"{srv.url}/api/v1/features").status_code == 200
        user = client("127.0.0.2").get(f"{srv.url}/api/v1/vonr?format=json")
        assert user.status_code == 200 and user.json()["data"]
        assert client("127.0.0.3").get(f"{srv.url}/api/v1/vonr").status_code == 403
        down = admin.get(f"{srv.url}/api/dev/runs")
        assert down.status_code == 503 and down.json()["title"] == "Database Unavailable"
        # a server started while the database is down uses the allow list's backup copy
        fresh = make_server(settings)
        assert client("127.0.0.2").get(f"{fresh.url}/api/v1/vonr").status_code == 200
        assert admin.get(f"{fresh.url}/api/dev/runs").status_code == 503
    finally:
        pg_ctl(boot, "start")
    deadline = time.monotonic() + 30
    while admin.get(f"{srv.url}/api/dev/runs").status_code != 200:
        assert time.monotonic() < deadline, "dev did not recover"
        time.sleep(0.2)
