"""Connections to the ledger: an external PostgreSQL, or the embedded one from `pgserver`.

With no ``database_url`` configured, FMW runs a real PostgreSQL 16 (shipped in the ``pgserver``
wheel) with its data in ``<data_dir>/pg``. The server keeps running after the command ends so
the next command reuses it; ``fmw db stop`` stops it.
"""

from __future__ import annotations

import atexit
import logging
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from fmw.errors import DatabaseUnavailable
from fmw.settings import Settings
from ledger.pgzones import ensure_zone_files

log = logging.getLogger(__name__)

_DRIVER_RE = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://")


def libpq_url(url: str) -> str:
    """Strip a SQLAlchemy driver suffix: ``postgresql+psycopg://`` -> ``postgresql://``."""
    return _DRIVER_RE.sub("postgresql://", url)


def sqlalchemy_url(url: str) -> str:
    """The same URL with SQLAlchemy's psycopg 3 driver named."""
    return _DRIVER_RE.sub("postgresql+psycopg://", url)


_PORT_LOCK = threading.Lock()


def port_file(pg_dir: Path) -> Path:
    """Where the embedded server's TCP port is remembered (beside the data folder: initdb
    wants that folder empty)."""
    return pg_dir.with_name(pg_dir.name + ".port")


def stable_port(saved: Path, host: str, pick: Callable[[str], int]) -> int:
    """The port remembered in `saved` when it is free on `host`, else a new one from `pick`
    (then remembered)."""
    try:
        port = int(saved.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        port = 0
    if 0 < port < 65536:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
                return port
            except OSError:
                log.warning("the embedded PostgreSQL's port %d is taken; using another", port)
    port = int(pick(host))
    try:
        saved.write_text(f"{port}\n", encoding="ascii", newline="\n")
    except OSError as exc:
        log.warning("cannot remember the embedded PostgreSQL's port in %s: %s", saved, exc)
    return port


def _start_embedded(pg_dir: Path) -> object:
    """pgserver's handle of the server in `pg_dir`, starting it when this process has none.

    Every connection asks for the handle; only the first one per process (or after
    `revive_embedded`) pays for the zone-file check and the port choice.
    """
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver
        import pgserver.postgres_server as pg_server_mod
        known = pgserver.PostgresServer._instances.get(pg_dir.resolve())
        if known is not None:
            return known
        ensure_zone_files(Path(pgserver.__file__).parent / "pginstall")
        with _PORT_LOCK:
            # pgserver listens on TCP only on Windows, on a new random port at every start:
            # keep the last one so `fmw db url` (psql, DBeaver, pg_dump) outlives a restart.
            original = pg_server_mod.find_suitable_port
            pg_server_mod.find_suitable_port = lambda address=None: stable_port(
                port_file(pg_dir), address or "127.0.0.1", original)
            try:
                return pgserver.get_server(pg_dir, cleanup_mode=None)
            finally:
                pg_server_mod.find_suitable_port = original


def _embedded_url(pg_dir: Path) -> str:
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server: Any = _start_embedded(pg_dir)
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {pg_dir}: {exc}") from exc
    url = str(server.get_uri())
    _tune_embedded(url)
    return url


#: Settings for the embedded server that need no restart: bulk syncs write several GB of WAL,
#: and with the default 1 GB a checkpoint would start in the middle of every large sync.
EMBEDDED_TUNING = {"max_wal_size": "4GB", "min_wal_size": "512MB", "checkpoint_timeout": "15min"}


def _tune_embedded(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        current = conn.execute("SELECT current_setting('max_wal_size')").fetchone()
        if current and current[0] == EMBEDDED_TUNING["max_wal_size"]:
            return
        for name, value in EMBEDDED_TUNING.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")


def database_url(settings: Settings) -> str:
    """The libpq URL of the ledger, starting the embedded server when none is configured.

    Raises:
        DatabaseUnavailable: the embedded server could not be started.
    """
    if settings.database_url:
        return libpq_url(settings.database_url)
    return _embedded_url(settings.pg_dir)


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded server if it runs. Returns True if one was stopped.

    Uses pg_ctl directly: pgserver's own handle would not stop a server it started with
    ``cleanup_mode=None`` (which is how FMW starts it, so it outlives each command).
    """
    pg_dir = settings.pg_dir
    if not settings.embedded or not (pg_dir / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]
    server = pgserver.get_server(pg_dir, cleanup_mode=None)
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg_dir, user=server.system_user)
    except Exception as exc:  # already stopped between the check and the call
        log.info("embedded PostgreSQL in %s did not stop cleanly: %s", pg_dir, exc)
        return False
    finally:
        # Forget the handle so a later start in this process starts the server again.
        atexit.unregister(server._cleanup)
        pgserver.PostgresServer._instances.pop(pg_dir.resolve(), None)
    return True


def embedded_alive(settings: Settings) -> bool:
    """True when the embedded server of `settings` runs: its ``postmaster.pid`` names a live
    process that reported itself ready."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import PostmasterInfo
    try:
        info = PostmasterInfo.read_from_pgdata(settings.pg_dir)
    except Exception:  # a half-written postmaster.pid while the server starts or stops
        return False
    return info is not None and info.is_running() and info.status == "ready"


def revive_embedded(settings: Settings) -> str:
    """Start the embedded server again after it died, and return its URL.

    pgserver keeps one handle per data folder for the life of the process and would hand back
    the dead server's; the handle is dropped first so the server is really started again.

    Raises:
        DatabaseUnavailable: it could not be started (the reason names the folder).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    old = pgserver.PostgresServer._instances.pop(settings.pg_dir.resolve(), None)
    if old is not None:
        atexit.unregister(old._cleanup)
    return _embedded_url(settings.pg_dir)


def connect(settings: Settings, *, autocommit: bool = False, url: str | None = None,
            application_name: str = "fmw") -> psycopg.Connection:
    """Open a connection with ``search_path`` set to the FMW schema and the time zone at UTC.

    Raises:
        DatabaseUnavailable: the server refused or could not be reached.
    """
    target = url or database_url(settings)
    for attempt in (1, 2):
        try:
            return psycopg.connect(
                target, autocommit=autocommit, application_name=application_name,
                options=f"-c search_path={settings.schema},public -c TimeZone=UTC",
                connect_timeout=10,
            )
        except psycopg.OperationalError as exc:
            # A server that answered but failed the start-up (seen under load: "error response
            # during SSL exchange") gets one more try; one that is down fails at once.
            if attempt == 1 and "refused" not in str(exc) and "No such file" not in str(exc):
                time.sleep(0.2)
                continue
            raise DatabaseUnavailable(
                f"cannot connect to the ledger database: {exc}".strip()) from exc
    raise AssertionError("unreachable")


@contextmanager
def connection(settings: Settings, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """Context-managed `connect`: commits on success, rolls back on error, always closes."""
    conn = connect(settings, autocommit=autocommit)
    try:
        with conn:
            yield conn
    finally:
        conn.close()
