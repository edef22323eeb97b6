"""Dump, check and restore the ledger schema with pg_dump / pg_restore, and fingerprint it.

A dump is taken inside a REPEATABLE READ transaction whose snapshot pg_dump imports
(``--snapshot``), and the fingerprint (row count and an order-independent checksum per table)
is computed in that same transaction, so the fingerprint describes exactly the dumped data even
while syncs run. The restore rehearsal restores into a scratch database on the same server
and computes the same fingerprint there.

The tools come from `pg_bin_dir` if set, else the embedded server's own binaries (the
``pgserver`` wheel ships pg_dump, pg_restore and psql), else PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from fmw.errors import FmwError
from fmw.settings import Settings
from ledger.db import connect, database_url
from ledger.schema import current_revision

TOOL_TIMEOUT_S = 6 * 3600
SCRATCH_PREFIX = "fmw_verify_"


class BackupError(FmwError):
    """A dump or restore failed, or a dump file is empty, unreadable or not what it claims."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class TableFingerprint:
    """Rows and an order-independent checksum (sum of per-row MD5 prefixes) of one table."""

    table: str
    rows: int
    checksum: str

    def as_json(self) -> dict[str, object]:
        return {"rows": self.rows, "checksum": self.checksum}


@dataclass(frozen=True)
class DumpInfo:
    path: Path
    schema: str
    server_version: str
    revision: str | None  # the schema's Alembic revision at the time of the dump
    tool: str
    tables: tuple[TableFingerprint, ...]


def pg_tool(name: str, bin_dir: Path | None = None) -> str:
    """Path of a PostgreSQL client program (`pg_dump`, `pg_restore`, `psql`).

    Raises:
        BackupError: found nowhere.
    """
    exe = name + (".exe" if os.name == "nt" else "")
    dirs: list[Path] = [bin_dir] if bin_dir is not None else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from pgserver._commands import POSTGRES_BIN_PATH
            dirs.append(Path(POSTGRES_BIN_PATH))
        except ImportError:
            pass
    for d in dirs:
        if (d / exe).is_file():
            return str(d / exe)
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(name, "not found in pg_bin_dir, the embedded PostgreSQL or PATH; "
                      "set pg_bin_dir to the bin folder of a PostgreSQL client")


def _conn_env(url: str, dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """A conninfo without the password (which goes into the environment, not argv)."""
    params = conninfo_to_dict(url)
    if dbname is not None:
        params["dbname"] = dbname
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def _run(cmd: Sequence[str], env: dict[str, str], what: str) -> str:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env,
                              timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(what, f"could not run {Path(cmd[0]).name}: {exc}") from exc
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip() or f"exit code {proc.returncode}"
        raise BackupError(what, f"{Path(cmd[0]).name} failed: {msg}")
    return proc.stdout


def fingerprint(conn: psycopg.Connection, schema: str) -> tuple[TableFingerprint, ...]:
    """Row count and checksum of every table in `schema`, by table name.

    The checksum adds up the first 60 bits of each row's MD5 (of its text form), so it needs
    no sort and no memory beyond one row, and it ignores physical row order (which a restore
    changes).
    """
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname", (schema,))]
    out = []
    for t in tables:
        q = sql.SQL("SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))"
                    "::bit(60)::bigint::numeric), 0)::text FROM {}.{} t").format(
            sql.Identifier(schema), sql.Identifier(t))
        row = conn.execute(q).fetchone()
        assert row is not None
        out.append(TableFingerprint(t, int(row[0]), str(row[1])))
    return tuple(out)


def dump(settings: Settings, target: Path, bin_dir: Path | None = None) -> DumpInfo:
    """``pg_dump -Fc`` of the FMW schema into `target`, with the fingerprint of what it holds.

    Raises:
        BackupError: pg_dump failed or wrote an empty or unreadable file.
        DatabaseUnavailable: the database cannot be reached.
    """
    tool = pg_tool("pg_dump", bin_dir)
    url = database_url(settings)
    conninfo, env = _conn_env(url)
    with connect(settings, url=url, application_name="fmw-backup") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snap_row = conn.execute("SELECT pg_export_snapshot(), current_setting('server_version')"
                                ).fetchone()
        assert snap_row is not None
        snapshot, version = str(snap_row[0]), str(snap_row[1])
        tables = fingerprint(conn, settings.schema)
        revision = current_revision(conn, settings.schema)
        if not tables:
            raise BackupError(settings.schema, "the schema has no tables: nothing to back up "
                              "(wrong schema, or `fmw db upgrade` never ran)")
        _run([tool, "--format=custom", "--no-owner", "--no-privileges",
              f"--schema={settings.schema}", f"--snapshot={snapshot}", f"--file={target}",
              f"--dbname={conninfo}"], env, str(target))
        conn.rollback()  # read only: nothing to commit; ends the exported snapshot
    check_dump(target, [t.table for t in tables], bin_dir)
    return DumpInfo(target, settings.schema, version, revision, tool, tables)


def check_dump(path: Path, tables: Sequence[str] = (), bin_dir: Path | None = None) -> list[str]:
    """Read a dump's table of contents (``pg_restore --list``); fail loudly when it is bad.

    Returns:
        The names of the tables whose data the dump holds.

    Raises:
        BackupError: missing, empty, not a pg_dump custom-format archive, or lacking the data
            of one of `tables`.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BackupError(str(path), f"unreadable: {exc}") from exc
    if size == 0:
        raise BackupError(str(path), "the dump is empty (0 bytes)")
    listing = _run([pg_tool("pg_restore", bin_dir), "--list", str(path)], dict(os.environ),
                   str(path))
    found = []
    for line in listing.splitlines():
        m = re.match(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ", line)
        if m:
            found.append(m.group(2))
    missing = sorted(set(tables) - set(found))
    if missing:
        raise BackupError(str(path), f"the dump lacks the data of {', '.join(missing)}")
    return found


@contextmanager
def scratch_database(settings: Settings) -> Iterator[str]:
    """A new empty database on the ledger's server, dropped afterwards; yields its URL.

    Raises:
        BackupError: the role may not create databases.
    """
    url = database_url(settings)
    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise BackupError(name, f"cannot create the scratch database: {exc}") from exc
    try:
        yield make_conninfo(url, dbname=name)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def restore(path: Path, url: str, *, replace: bool = False, bin_dir: Path | None = None) -> None:
    """``pg_restore`` a dump into the database at `url`, in one transaction.

    With `replace`, the dumped schema's existing objects are dropped first (``--clean``).

    Raises:
        BackupError: pg_restore reported an error (nothing was changed).
    """
    conninfo, env = _conn_env(url)
    cmd = [pg_tool("pg_restore", bin_dir), "--no-owner", "--no-privileges", "--exit-on-error",
           "--single-transaction", f"--dbname={conninfo}"]
    if replace:
        cmd += ["--clean", "--if-exists"]
    _run([*cmd, str(path)], env, str(path))


def replace_schema(settings: Settings, path: Path, bin_dir: Path | None = None) -> None:
    """Put the dumped schema in place of the live one (disaster recovery, deploy rollback).

    The live schema is renamed aside first, so objects the dump does not know (a newer
    migration's tables) cannot make the restore fail; it is dropped after a successful
    restore and renamed back when the restore fails.

    Raises:
        BackupError: the restore failed; the live schema is back as it was.
    """
    url = database_url(settings)
    aside = f"{settings.schema[:40]}_replaced_{uuid.uuid4().hex[:8]}"
    live, moved = sql.Identifier(settings.schema), sql.Identifier(aside)
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                              (settings.schema,)).fetchone()
        if exists:
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(live, moved))
        try:
            restore(path, url, bin_dir=bin_dir)
        except BaseException:
            if exists:
                with conn.transaction():
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(live))
                    conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(moved, live))
            raise
        if exists:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(moved))


def live_revision(settings: Settings) -> str | None:
    """The live schema's Alembic revision (None: the schema does not exist)."""
    with connect(settings, autocommit=True, application_name="fmw-restore") as conn:
        return current_revision(conn, settings.schema)


def restored_fingerprint(url: str, schema: str) -> tuple[TableFingerprint, ...]:
    """The fingerprint of `schema` in another database (a restored scratch copy)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return fingerprint(conn, schema)


def list_scratch_databases(settings: Settings) -> list[str]:
    """Scratch databases left behind (a rehearsal killed midway), for cleanup and tests."""
    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
                            (SCRATCH_PREFIX + "%",)).fetchall()
    return [str(r[0]) for r in rows]
