"""The `fmw` command as a real process: every ledger command, machine output, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger import runs
from ledger.db import connect
from tests.ledger.helpers import csv_source, ledger_fingerprint, write_csv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fmw(make_settings, pg_url, tmp_path):
    """Run `fmw` in a subprocess against this test's schema and config."""
    state: dict[str, object] = {}

    def setup(toml: str):
        s = make_settings(toml)
        state["settings"] = s
        return s

    def call(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        s = state["settings"]
        env = {**os.environ, "FMW_DATABASE_URL": pg_url, "FMW_SCHEMA": s.schema,
               "PYTHONPATH": str(ROOT), "FMW_PROGRESS": "0"}
        p = subprocess.run([sys.executable, "-m", "fmw", "--config", str(s.config_path), *args],
                           capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    call.setup = setup  # type: ignore[attr-defined]
    return call


def rows(n: int, status: str = "on") -> list[list[str]]:
    return [["volte", f"F{i // 1000}", "450", f"{i % 1000:03d}", status, "", "", ""] for i in range(n)]


def test_sync_runs_and_changes_commands_print_json_for_scripts(fmw, tmp_path):
    src = write_csv(tmp_path / "a.csv", rows(5))
    fmw.setup(csv_source("a", src))
    out = fmw("sync").stdout
    assert "created 5" in out
    listed = json.loads(fmw("runs", "--json").stdout)
    assert [(r["status"], r["created"], r["rows_read"]) for r in listed] == [("succeeded", 5, 5)]
    detail = json.loads(fmw("runs", str(listed[0]["id"]), "--json").stdout)
    assert detail["errors"] == [] and detail["source_stats"]["a"]["created"] == 5
    ch = json.loads(fmw("changes", "--json", "--run", str(listed[0]["id"])).stdout)
    assert len(ch) == 5 and {c["op"] for c in ch} == {"C"}
    assert json.loads(fmw("changes", "--json", "--op", "D").stdout) == []
    assert "postgresql://" in fmw("db", "url").stdout


def test_second_sync_is_refused_while_one_holds_the_lock(fmw, tmp_path):
    src = write_csv(tmp_path / "a.csv", rows(5))
    s = fmw.setup(csv_source("a", src))
    holder = connect(s, autocommit=True)
    try:
        runs.acquire_lock(holder, s.schema)
        run_id = runs.start_run(holder, "test", ["a"], "UTC")
        p = fmw("sync", check=False)
    finally:
        holder.close()
    assert p.returncode == 4
    assert f"a sync is already running (run {run_id})" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_sync_killed_mid_run_leaves_the_ledger_unchanged_and_the_next_sync_succeeds(fmw, tmp_path):
    src = write_csv(tmp_path / "a.csv", rows(2000))
    s = fmw.setup(csv_source("a", src))
    fmw("sync")
    write_csv(src, rows(300_000, status="off"))  # big enough to be killed in the middle
    with connect(s, autocommit=True) as conn:
        before = ledger_fingerprint(conn)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmw", "--config", str(s.config_path), "sync"],
        env={**os.environ, "FMW_DATABASE_URL": s.database_url or "", "FMW_SCHEMA": s.schema,
             "PYTHONPATH": str(ROOT), "FMW_PROGRESS": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        with connect(s, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                active = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                    "'fmw-sync-run-%%' AND state = 'active'").fetchone()
                if active and active[0]:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the sync never started working")
            proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no cleanup code runs
            proc.wait(10)
            killed = conn.execute("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            assert killed[1] == "running"
            time.sleep(0.5)
            assert ledger_fingerprint(conn) == before
    finally:
        if proc.poll() is None:
            proc.kill()
    write_csv(src, rows(2000, status="off"))
    out = fmw("sync").stdout
    assert "updated 2,000" in out
    with connect(s) as conn:
        status, summary = conn.execute("SELECT status, error_summary FROM runs WHERE id = %s",
                                       (killed[0],)).fetchone()
    assert status == "failed" and "interrupted" in summary


ORPHAN = """
import sys, psycopg
url, schema, name = sys.argv[1:4]
with psycopg.connect(url, application_name=name, options=f"-c search_path={schema}") as c:
    c.execute("UPDATE features SET status = 'orphaned'")
    print("holding", flush=True)
    c.execute("SELECT pg_sleep(600)")
"""


def test_next_sync_ends_the_work_of_a_killed_sync_the_server_did_not_notice(fmw, tmp_path):
    """Where the server cannot watch the client (Windows refuses client_connection_check_interval),
    a killed sync's statement runs on holding row locks; the next sync must end it, not wait."""
    src = write_csv(tmp_path / "a.csv", rows(500))
    s = fmw.setup(csv_source("a", src))
    fmw("sync")
    with connect(s, autocommit=True) as conn:
        before = ledger_fingerprint(conn)
        dead = runs.start_run(conn, "cli", ["a"], "UTC")  # its owner is gone: no lock is held
    orphan = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, s.database_url or "", s.schema,
         runs.run_backend_name(s.schema, dead)], stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout is not None and orphan.stdout.readline().strip() == "holding"
        started = time.monotonic()
        write_csv(src, rows(500, status="off"))
        out = fmw("sync", timeout=60).stdout
        assert time.monotonic() - started < 30  # did not wait for the orphan's pg_sleep(600)
        assert "updated 500" in out
        assert orphan.wait(30) != 0  # its session was terminated, its UPDATE rolled back
    finally:
        if orphan.poll() is None:
            orphan.kill()
    with connect(s, autocommit=True) as conn:
        assert ledger_fingerprint(conn) != before
        assert conn.execute("SELECT count(*) FROM features WHERE status = 'orphaned'"
                            ).fetchone()[0] == 0
        status, summary = conn.execute("SELECT status, error_summary FROM runs WHERE id = %s",
                                       (dead,)).fetchone()
    assert status == "failed" and "interrupted" in summary


def test_namemap_import_export_round_trip_and_bad_file(fmw, tmp_path):
    fmw.setup("")
    good = tmp_path / "names.csv"
    good.write_text("kind,alias,canonical\nstatus,ON,enabled\nfeature_name,Vo LTE,VoLTE\n"
                    "operator,SKT,SK Telecom\n", encoding="cp949")
    assert "imported 3 aliases" in fmw("namemap", "import", str(good)).stdout
    out = tmp_path / "out.csv"
    fmw("namemap", "export", str(out))
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").splitlines()[1:] == [
        "feature_name,Vo LTE,VoLTE", "operator,SKT,SK Telecom", "status,ON,enabled"]
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,alias,canonical\nstatus,OFF,disabled\ncolour,red,blue\n", encoding="utf-8")
    p = fmw("namemap", "import", str(bad), check=False)
    assert p.returncode != 0 and "bad.csv" in p.stderr and "row 3" in p.stderr
    assert "kind 'colour'" in p.stderr
    fmw("namemap", "export", str(out))
    assert "OFF" not in out.read_text(encoding="utf-8-sig")  # nothing half-applied


def test_mccmnc_load_reports_counts_and_rejects_a_bad_file(fmw, tmp_path):
    fmw.setup("")
    out = fmw("mccmnc", "load").stdout
    assert "MCC/MNC entries" in out
    bad = tmp_path / "mm.csv"
    bad.write_text("mcc,mnc,country,country_code,operator,brand\n450,05,Korea,KR,SKT,SKT\n"
                   "45,06,Korea,KR,X,X\n", encoding="utf-8")
    p = fmw("mccmnc", "load", str(bad), check=False)
    assert p.returncode != 0 and "mm.csv" in p.stderr and "row 3" in p.stderr


def test_commands_on_a_schema_that_is_behind_say_how_to_fix_it(pg_url, tmp_path):
    env = {**os.environ, "FMW_DATABASE_URL": pg_url, "FMW_SCHEMA": "never_migrated",
           "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "fmw", "runs"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == 3 and "run `fmw db upgrade`" in p.stderr


def test_init_writes_a_config_that_loads(tmp_path):
    target = tmp_path / "fmw.toml"
    p = subprocess.run([sys.executable, "-m", "fmw", "init", str(target)], capture_output=True,
                       text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    from fmw.settings import load_settings
    s = load_settings(target, environ={})
    assert [src.name for src in s.sources] == ["volte_sheet"]
    again = subprocess.run([sys.executable, "-m", "fmw", "init", str(target)], capture_output=True,
                           text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert again.returncode != 0 and "--force" in again.stderr


def test_demo_syncs_sample_sources_twice_and_shows_what_happened(fmw, tmp_path):
    fmw.setup("")
    out = fmw("demo", "--dir", str(tmp_path / "demo"), timeout=300).stdout
    assert "day 1: first sync" in out and "day 2: the sources changed" in out
    first = out.split("day 1: first sync", 1)[1]
    assert "partial" in first and "conflicts 1" in first
    listed = json.loads(fmw("runs", "--json").stdout)
    assert [r["trigger"] for r in listed] == ["demo", "demo"]
    day2 = listed[0]
    assert day2["created"] > 0 and day2["updated"] > 0 and day2["deleted"] > 0
    assert (tmp_path / "demo" / "fmw.toml").is_file()


def test_db_upgrade_loads_the_shipped_mcc_mnc_list_and_says_when_a_newer_one_ships(fmw):
    """Issue 13: a new install synced with no country/operator until someone ran
    `fmw mccmnc load`."""
    s = fmw.setup("")
    with connect(s, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM mcc_mnc_map").fetchone()[0] == 0
    out = fmw("db", "upgrade").stdout
    assert "loaded the shipped MCC/MNC list" in out
    with connect(s, autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM mcc_mnc_map").fetchone()[0]
        assert n > 1000
    out = fmw("db", "upgrade").stdout  # loaded and current: nothing to say
    assert "MCC/MNC" not in out
    with connect(s, autocommit=True) as conn:  # as if this FMW shipped a newer list
        conn.execute("DELETE FROM mcc_mnc_map WHERE ctid IN (SELECT ctid FROM mcc_mnc_map "
                     "LIMIT 3)")
        conn.execute("UPDATE mcc_mnc_map SET operator = 'Old name' WHERE id = "
                     "(SELECT min(id) FROM mcc_mnc_map)")
    out = fmw("db", "upgrade").stdout
    assert "a newer shipped MCC/MNC list is available (5 entries differ" in out, out
    with connect(s, autocommit=True) as conn:  # told, not changed behind the admin's back
        assert conn.execute("SELECT count(*) FROM mcc_mnc_map").fetchone()[0] == n - 3
