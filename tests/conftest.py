"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fmw.settings import Settings, load_settings
from ledger.db import connect, database_url
from ledger.schema import upgrade


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real PostgreSQL started the way FMW starts its embedded one."""
    data_dir = tmp_path_factory.mktemp("fmw-pg")
    boot = Settings(data_dir=data_dir)
    url = database_url(boot)
    yield url
    from ledger.db import stop_embedded
    stop_embedded(boot)


@pytest.fixture
def make_settings(pg_url: str, tmp_path: Path):
    """Build settings from TOML text (sources etc.) against a fresh, migrated schema."""
    made: list[Settings] = []

    def make(toml: str = "", *, migrate: bool = True, **env: str) -> Settings:
        cfg = tmp_path / f"fmw-{len(made)}.toml"
        cfg.write_text(toml, encoding="utf-8")
        schema = made[0].schema if made else f"t_{uuid.uuid4().hex[:12]}"
        environ = {"FMW_DATABASE_URL": pg_url, "FMW_SCHEMA": schema, **env}
        s = load_settings(cfg, tmp_path / "data", environ=environ)
        if migrate and not made:
            upgrade(s)
        made.append(s)
        return s

    yield make
    if made:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{made[0].schema}" CASCADE')


@pytest.fixture
def db(make_settings) -> Iterator[psycopg.Connection]:
    """A connection to a fresh migrated schema (autocommit)."""
    s = make_settings()
    conn = connect(s, autocommit=True)
    yield conn
    conn.close()
