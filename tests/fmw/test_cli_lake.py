"""`fmw sync` publishing, `fmw snapshot`, `fmw snapshots`, `fmw sql`, `fmw catalog` as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.ledger.helpers import csv_source, write_csv

ROOT = Path(__file__).resolve().parents[2]


def run(s, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FMW_DATABASE_URL": s.database_url, "FMW_SCHEMA": s.schema,
           "PYTHONPATH": str(ROOT), "FMW_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "fmw", "--config", str(s.config_path),
                           "--data-dir", str(s.data_dir), *args], capture_output=True, text=True,
                          env=env, timeout=180, input=stdin)


def test_sync_publishes_and_analysts_query_the_snapshot(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", [["volte", "VoLTE", "450", "05", "on", "", "", ""],
                                         ["rcs", "Chat", "450", "08", "off", "", "", ""]])
    s = make_settings(csv_source("a", src))
    p = run(s, "sync")
    assert p.returncode == 0, p.stderr
    assert "published snapshot v000001" in p.stdout
    assert run(s, "snapshot").stdout.startswith("published snapshot v000002")
    listed = json.loads(run(s, "snapshots", "--json").stdout)
    assert sorted((v["version"], v["current"], v["rows"]) for v in listed) == [
        (1, False, 2), (2, True, 2)]
    out = run(s, "sql", "SELECT feature_group, status FROM features ORDER BY 1", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"feature_group": "rcs", "status": "off"},
                                      {"feature_group": "volte", "status": "on"}]
    shell = run(s, "sql", "--format", "csv", stdin="SELECT count(*) AS n\nFROM features;\n")
    assert "n\n2" in shell.stdout
    bad = run(s, "sql", "SELECT * FROM read_csv('/etc/passwd')")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    cat = tmp_path / "fmw.duckdb"
    assert run(s, "catalog", str(cat)).returncode == 0
    with duckdb.connect(str(cat), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM features").fetchall() == [(2,)]


def test_sync_without_snapshot_and_an_empty_snapshots_folder(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", [["volte", "VoLTE", "450", "05", "on", "", "", ""]])
    s = make_settings(csv_source("a", src))
    p = run(s, "sync", "--no-snapshot")
    assert p.returncode == 0 and "published" not in p.stdout
    assert "no snapshot" in run(s, "snapshots").stdout
