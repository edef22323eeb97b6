"""A real ledger, a real published snapshot and a real waitress server on a loopback port.

The dataset is built once per test module (sync + publish take a few seconds) and is small
enough to check by hand: 4 groups, 236 rows, 5 MCC/MNC pairs, statuses enabled/disabled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from requests.adapters import HTTPAdapter

from api.app import create_app
from api.security import RateLimiter
from api.server import RunningServer, start
from api.services import Services, build_services
from fmw.settings import Settings, load_settings
from lake.publish import publish_snapshot
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import fresh_instance

GROUP_SIZES = {"volte": 150, "vonr": 60, "rcs": 25, "esim": 1}
PAIRS = [("450", "05"), ("450", "08"), ("310", "410"), ("262", "01"), ("440", "10")]
TOTAL = sum(GROUP_SIZES.values())


def extract_rows(sizes: dict[str, int] = GROUP_SIZES) -> list[tuple[str, ...]]:
    rows = []
    for group, n in sizes.items():
        for i in range(n):
            mcc, mnc = PAIRS[i % len(PAIRS)]
            status = "disabled" if i % 4 == 0 else "enabled"
            name = f"Feature {i // len(PAIRS):03d}" + (" 한국" if i % 9 == 0 else "")
            rows.append((group, name, mcc, mnc, status, str(i % 3), "kim", "2026-11-01"))
    return rows


@dataclass
class Env:
    settings: Settings
    run_id: int
    version: int
    key: str
    source: Path

    def settings_with(self, **env: str) -> Settings:
        base = {"FMW_DATABASE_URL": self.settings.database_url or "",
                "FMW_SCHEMA": self.settings.schema,
                "FMW_SNAPSHOTS_DIR": str(self.settings.snapshots_path), **env}
        assert self.settings.config_path is not None
        return load_settings(self.settings.config_path, self.settings.data_dir, environ=base)


def build_env(pg_url: str, root: Path) -> Env:
    """A fresh schema with one real sync of the extract and one published snapshot."""
    s, key, src = fresh_instance(pg_url, root, extract_rows())
    result = run_sync(s, plan_sync(s, trigger="test"))
    manifest = publish_snapshot(s, result.run_id)
    return Env(s, result.run_id, manifest.version, key, src)


def drop_schema(pg_url: str, schema: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def env(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = build_env(pg_url, tmp_path_factory.mktemp("api"))
    yield e
    drop_schema(pg_url, e.settings.schema)


@dataclass
class Server:
    url: str
    services: Services
    running: RunningServer


def serve(settings: Settings, **overrides: object) -> Server:
    overrides.setdefault("dev_rate", RateLimiter(100_000))
    svc = build_services(settings, **overrides)
    running = start(create_app(settings, svc), settings)
    return Server(running.url, svc, running)


def stop(server: Server) -> None:
    server.running.stop()
    server.services.close()


@pytest.fixture(scope="module")
def server(env: Env) -> Iterator[Server]:
    srv = serve(env.settings)
    yield srv
    stop(srv)


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    """Extra servers for one test (own rate limits, settings); stopped afterwards."""
    made: list[Server] = []

    def make(settings: Settings, **overrides: object) -> Server:
        srv = serve(settings, **overrides)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        stop(srv)


class _SourceAdapter(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def client(source: str = "127.0.0.1", key: str | None = None) -> requests.Session:
    """An HTTP client whose connections come from `source` (any 127.x address works locally)."""
    s = requests.Session()
    adapter = _SourceAdapter(source)
    s.mount("http://", adapter)
    s.headers["Accept-Encoding"] = "identity"
    if key:
        s.headers["Authorization"] = f"Bearer {key}"
    return s


@pytest.fixture
def http() -> requests.Session:
    return client()


@pytest.fixture
def admin(env: Env) -> requests.Session:
    return client(key=env.key)


def with_api(settings: Settings, **values: object) -> Settings:
    """`settings` plus API settings (api_trusted_proxy, ...) whether or not `Settings` declares
    them yet: a frozen subclass carrying the extra fields."""
    import dataclasses
    extra = [(k, object, dataclasses.field(default=v)) for k, v in values.items()]
    cls = dataclasses.make_dataclass("ApiSettings", extra, bases=(type(settings),), frozen=True)
    base = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if f.name not in values}
    return cls(**base, **values)  # type: ignore[no-any-return]
