"""The embedded PostgreSQL without its own zone files (pgserver's win_amd64 wheel) gets them from
tzdata on first start and then tells time exactly as a PostgreSQL with its own files does."""

from __future__ import annotations

import shutil
import sys
import threading
import warnings
from pathlib import Path

import psycopg
import pytest

from fmw.errors import DatabaseUnavailable
from ledger import pgzones

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pgserver
    import pgserver._commands as pg_commands
    import pgserver.postgres_server as pg_server_mod

PGINSTALL = Path(pgserver.__file__).parent / "pginstall"

#: Instants around DST changes and zone-rule changes, in zones FMW's users configure.
ZONE_QUERY = """
SELECT z, to_char(t AT TIME ZONE z, 'YYYY-MM-DD HH24:MI:SS'),
       (timestamp '2026-10-25 02:30:00' AT TIME ZONE z)::text,
       (timestamp '2026-03-29 02:30:00' AT TIME ZONE z)::text,
       ((t AT TIME ZONE z)::date)::text
FROM unnest(%s::text[]) AS z,
     unnest(ARRAY[timestamptz '2026-03-29 00:59:59+00', timestamptz '2026-03-29 01:00:00+00',
                  timestamptz '2026-10-25 00:30:00+00', timestamptz '2026-12-31 15:00:00+00',
                  timestamptz '1988-05-08 01:59:59+09', timestamptz '2011-12-29 09:59:59+00'])
     AS t
ORDER BY 1, 2
"""
ZONES = ["UTC", "Asia/Seoul", "Europe/Berlin", "America/New_York", "Europe/London",
         "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata", "Etc/GMT+5"]


def _no_zones_install(root: Path) -> Path:
    """A copy of pgserver's install without ``share/postgresql/timezone``, laid out like
    site-packages so the binaries' relative library path still finds auditwheel's libraries."""
    copy = root / "site" / "pgserver" / "pginstall"
    shutil.copytree(PGINSTALL, copy, symlinks=True)
    libs = PGINSTALL.parent.parent / "pgserver.libs"
    if libs.is_dir():
        (root / "site" / "pgserver.libs").symlink_to(libs, target_is_directory=True)
    shutil.rmtree(pgzones.zone_dir(copy), ignore_errors=True)
    return copy


def test_zone_files_come_from_tzdata_once_and_skip_python_files(tmp_path):
    install = _no_zones_install(tmp_path)
    assert not pgzones.zone_dir(install).exists()
    n = pgzones.ensure_zone_files(install)
    zones = pgzones.zone_dir(install)
    assert n > 300 and (zones / "UTC").is_file() and (zones / "Asia" / "Seoul").is_file()
    assert (zones / "Asia" / "Seoul").read_bytes().startswith(b"TZif")
    assert not list(zones.rglob("*.py")) and not list(zones.rglob("__pycache__"))
    assert pgzones.ensure_zone_files(install) == 0  # already there: nothing copied
    assert not [p for p in zones.parent.iterdir() if p.name.startswith("timezone.tmp")]


def test_two_processes_starting_at_once_leave_one_complete_folder(tmp_path):
    install = _no_zones_install(tmp_path)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(pgzones.ensure_zone_files(install)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and sum(1 for r in results if r) >= 1
    expected = {p.relative_to(pgzones.tzdata_zoneinfo()) for p in
                pgzones.tzdata_zoneinfo().rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                and "__pycache__" not in p.parts}
    got = {p.relative_to(pgzones.zone_dir(install)) for p in
           pgzones.zone_dir(install).rglob("*") if p.is_file()}
    assert got == expected
    assert not [p for p in install.joinpath("share", "postgresql").iterdir()
                if p.name.startswith("timezone.tmp")]


def test_a_zone_folder_that_cannot_be_made_is_named_in_a_clear_error(tmp_path):
    install = _no_zones_install(tmp_path)
    pgzones.zone_dir(install).write_text("not a folder", newline="\n")  # blocks it, even for root
    with pytest.raises(DatabaseUnavailable, match=r"could not write them to .*timezone"):
        pgzones.ensure_zone_files(install)
    share = install / "share" / "postgresql"
    assert not [p for p in share.iterdir() if p.name.startswith("timezone.tmp")]


def test_a_missing_source_zone_is_refused_and_nothing_is_left_behind(tmp_path):
    install = _no_zones_install(tmp_path)
    empty = tmp_path / "zoneinfo"
    (empty / "Asia").mkdir(parents=True)
    with pytest.raises(DatabaseUnavailable, match="no UTC zone"):
        pgzones.ensure_zone_files(install, source=empty)
    share = install / "share" / "postgresql"
    assert not [p for p in share.iterdir() if p.name == "timezone" or p.name.startswith("timezone.tmp")]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="on Windows pgserver ships no zone files, so "
                    "every test's server already runs on tzdata's: there is no server with "
                    "PostgreSQL's own files to compare with")
def test_a_server_given_tzdata_files_tells_time_as_one_with_its_own(tmp_path, pg_url, monkeypatch):
    """Starts a second real PostgreSQL from a copy of the install whose zone folder was removed,
    the way FMW's embedded start fills it, and compares its answers with the session's server."""
    install = _no_zones_install(tmp_path)
    pgzones.ensure_zone_files(install)
    monkeypatch.setattr(pg_commands, "POSTGRES_BIN_PATH", install / "bin")
    monkeypatch.setattr(pg_server_mod, "POSTGRES_BIN_PATH", install / "bin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri(), options="-c TimeZone=UTC") as fresh, \
                psycopg.connect(pg_url, options="-c TimeZone=UTC") as own:
            got = fresh.execute(ZONE_QUERY, (ZONES,)).fetchall()
            want = own.execute(ZONE_QUERY, (ZONES,)).fetchall()
            assert got == want and len(got) == len(ZONES) * 6
            for conn in (fresh, own):
                conn.execute("SET TimeZone = 'Asia/Seoul'")
            q = "SELECT timestamptz '2026-12-04 09:00:00+00'::text, now()::date = now()::date"
            assert fresh.execute(q).fetchone() == own.execute(q).fetchone() == (
                "2026-12-04 18:00:00+09", True)
    finally:
        server.cleanup()
        pg_server_mod.PostgresServer._instances.pop((tmp_path / "pg").resolve(), None)


def test_the_embedded_port_is_kept_across_restarts_while_it_is_free(tmp_path):
    """pgserver picks a random TCP port at each start on Windows; FMW keeps the last one."""
    import socket

    from ledger.db import port_file, stable_port
    saved = port_file(tmp_path / "pg")
    assert saved.name == "pg.port"
    picked = iter([50101, 50102])
    first = stable_port(saved, "127.0.0.1", lambda host: next(picked))
    assert first == 50101 and saved.read_text(encoding="ascii") == "50101\n"
    assert stable_port(saved, "127.0.0.1", lambda host: pytest.fail("must reuse")) == 50101
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 50101))
        taken.listen()
        assert stable_port(saved, "127.0.0.1", lambda host: next(picked)) == 50102
    saved.write_text("junk", encoding="ascii")
    assert stable_port(saved, "127.0.0.1", lambda host: 50103) == 50103
