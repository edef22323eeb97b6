"""Schema versions: run Alembic migrations and refuse to work on a schema that is behind."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from fmw.errors import SchemaBehind
from fmw.settings import Settings
from ledger.db import database_url, sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def upgrade(settings: Settings, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the schema to `revision`. Returns (revision before, revision after).

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    url = database_url(settings)
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            before = _current_sa(conn, settings.schema)
            cfg = _config()
            cfg.attributes["connection"] = conn
            cfg.attributes["schema"] = settings.schema
            command.upgrade(cfg, revision)
            after = _current_sa(conn, settings.schema)
    finally:
        engine.dispose()
    return before, after or revision


def _current_sa(conn: object, schema: str) -> str | None:
    from sqlalchemy import text
    exists = conn.execute(  # type: ignore[attr-defined]
        text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{schema}.alembic_version"}
    ).scalar_one()
    if not exists:
        return None
    return conn.execute(  # type: ignore[attr-defined]
        text(f'SELECT version_num FROM "{schema}".alembic_version')
    ).scalar_one_or_none()


def current_revision(conn: psycopg.Connection, schema: str) -> str | None:
    """The schema's revision, or None if FMW's tables were never created there."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.alembic_version",)).fetchone()
    if not row or not row[0]:
        return None
    got = conn.execute(f'SELECT version_num FROM "{schema}".alembic_version').fetchone()
    return got[0] if got else None


def connect_current(settings: Settings, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to a schema that is at the code's revision (for commands).

    Raises:
        DatabaseUnavailable, SchemaBehind.
    """
    from ledger.db import connect
    conn = connect(settings, autocommit=autocommit)
    try:
        require_current(conn, settings.schema)
    except BaseException:
        conn.close()
        raise
    return conn


def require_current(conn: psycopg.Connection, schema: str) -> None:
    """Raise unless the schema is at the code's head revision.

    Raises:
        SchemaBehind: with the command that fixes it.
    """
    current = current_revision(conn, schema)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaBehind(f"the ledger schema {schema!r} does not exist yet: run `fmw db upgrade`")
    raise SchemaBehind(
        f"the ledger schema {schema!r} is at revision {current}, this FMW needs {head}: "
        "run `fmw db upgrade`"
    )


LEDGER_TABLES = ("features", "changes", "runs", "run_errors", "daily_counts", "name_map",
                 "mcc_mnc_map", "snapshots")


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Row counts of the ledger tables (for `fmw db status`)."""
    out = {}
    for t in LEDGER_TABLES:
        row = conn.execute(f"SELECT count(*) FROM {t}").fetchone()
        out[t] = int(row[0]) if row else 0
    return out
