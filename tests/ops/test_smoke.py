"""`fmw smoke` against a real API subprocess: it passes on a healthy install and fails, naming
the check, when the API is down, the snapshot is too old or the key is wrong."""

from __future__ import annotations

import json

from ledger.access import list_keys
from ledger.db import connect
from ops.smoke import TEMP_KEY_NAME
from tests.ops.conftest import fmw, free_port


def test_smoke_passes_against_a_healthy_api_with_a_temporary_key(ops_env, api):
    r = fmw(ops_env, "smoke", "--url", api.url, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == ["health", "v1 query", "snapshot age",
                                                     "dev API"]
    with connect(ops_env.settings, autocommit=True) as conn:
        temp = [k for k in list_keys(conn) if k.name == TEMP_KEY_NAME]
    assert temp and all(k.revoked_at is not None for k in temp)  # revoked after the run


def test_smoke_report_is_readable_text(ops_env, api):
    r = fmw(ops_env, "smoke", "--url", api.url, "--key", ops_env.key)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS  health" in r.stdout and "PASS  v1 query" in r.stdout
    assert r.stdout.rstrip().endswith("smoke test PASSED")


def test_smoke_fails_when_nothing_answers(ops_env):
    url = f"http://127.0.0.1:{free_port()}"
    r = fmw(ops_env, "smoke", "--url", url, "--wait", "1")
    assert r.returncode == 1
    assert "FAIL  reachable" in r.stdout and "smoke test FAILED" in r.stdout


def test_smoke_fails_on_a_stale_snapshot(ops_env, api):
    r = fmw(ops_env, "smoke", "--url", api.url, "--key", ops_env.key, "--max-age-hours",
            "0.00001", "--json")
    assert r.returncode == 1
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["snapshot age"]["ok"] is False and "limit" in checks["snapshot age"]["detail"]
    assert checks["health"]["ok"] and checks["v1 query"]["ok"] and checks["dev API"]["ok"]


def test_smoke_fails_with_a_wrong_key(ops_env, api, tmp_path):
    bad = tmp_path / "key.txt"
    bad.write_text("fmw_00000000_not-a-key\n", encoding="utf-8")
    r = fmw(ops_env, "smoke", "--url", api.url, "--key-file", str(bad), "--json")
    assert r.returncode == 1
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["health"]["ok"] is False and "401" in checks["health"]["detail"]
    assert checks["dev API"]["ok"] is False and "401" in checks["dev API"]["detail"]
    assert checks["v1 query"]["ok"] is True


def test_smoke_results_and_deploys_are_recorded_and_shown_by_status(ops_env, api):
    """Issue 13: `fmw status` shows the last deploy and the last smoke test, from the ledger."""
    with connect(ops_env.settings, autocommit=True) as conn:
        conn.execute("TRUNCATE deploys, smoke_runs")
    assert fmw(ops_env, "smoke", "--url", api.url).returncode == 0
    down = f"http://127.0.0.1:{free_port()}"
    assert fmw(ops_env, "smoke", "--url", down, "--wait", "0").returncode == 1
    r = fmw(ops_env, "deploy", "record", "--version", "0.2.0", "--started",
            "2026-12-07T05:00:00Z", "--outcome", "failed", "--rolled-back", "--detail",
            "fmw smoke failed (exit code 1)")
    assert r.returncode == 0 and "rolled back" in r.stdout, r.stderr
    with connect(ops_env.settings, autocommit=True) as conn:
        smokes = conn.execute("SELECT ok, failed, url FROM smoke_runs ORDER BY id").fetchall()
    assert smokes[0][0] is True and smokes[1][0] is False and smokes[1][2] == down
    status = json.loads(fmw(ops_env, "status", "--json").stdout)
    lines = {ln["text"]: ln["level"] for ln in status["lines"] if ln["section"] == "deploys"}
    [dep] = [t for t in lines if t.startswith("last deploy 0.2.0 failed and rolled back")]
    [smk] = [t for t in lines if t.startswith("last smoke test FAILED")]
    assert lines[dep] == "warn" and lines[smk] == "fail" and down in smk
