"""The ops commands as a user runs them (a real subprocess), and the status functions for
`fmw status` and `/api/dev/sla`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fmw.cli_ops import main
from fmw.errors import ConfigError
from fmw.settings import Settings
from ledger import scheduling, sla
from ledger.db import connect
from scheduler.config import OpsConfig
from scheduler.core import CRON_JOB
from scheduler.status import ops_status

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def fmw(monkeypatch, capsys) -> Callable[..., Ran]:
    """Run an ops command in this process, as `fmw` would (settings from file + environment)."""
    def run(s: Settings, *args: str) -> Ran:
        monkeypatch.setenv("FMW_DATABASE_URL", s.database_url or "")
        monkeypatch.setenv("FMW_SCHEMA", s.schema)
        capsys.readouterr()
        code = main(["--config", str(s.config_path), "--data-dir", str(s.data_dir), *args])
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)
    return run


def test_the_commands_run_as_a_subprocess(make_settings) -> None:
    s = make_settings()
    env = {**os.environ, "FMW_DATABASE_URL": s.database_url or "", "FMW_SCHEMA": s.schema,
           "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "fmw.cli_ops", "--config", str(s.config_path),
                        "sla", "list"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "success_rate" in r.stdout, r.stderr


def test_sla_commands(make_settings, fmw) -> None:
    s = make_settings()
    listed = json.loads(fmw(s, "sla", "list", "--json").stdout)
    assert {d["name"]: d["kind"] for d in listed} == {
        "freshness": "freshness", "daily_deadline": "daily_deadline",
        "success_rate": "success_rate", "api_p95": "api_p95"}
    assert {d["name"]: d["threshold"] for d in listed}["success_rate"] == 0.98
    r = fmw(s, "sla", "set", "daily_deadline", "--deadline", "08:30", "--disable")
    assert r.returncode == 0, r.stderr
    with connect(s, autocommit=True) as conn:
        d = {x.name: x for x in sla.list_definitions(conn)}["daily_deadline"]
    assert d.deadline is not None and d.deadline.strftime("%H:%M") == "08:30" and not d.enabled
    bad = fmw(s, "sla", "set", "success_rate", "--threshold", "7")
    assert bad.returncode == 1 and "value refused" in bad.stderr
    checked = json.loads(fmw(s, "sla", "check", "--json").stdout)
    assert [v["sla_name"] for v in checked["opened"]] == ["freshness"]  # no sync yet
    assert "freshness" in fmw(s, "sla", "violations").stdout
    assert json.loads(fmw(s, "sla", "violations", "--all", "--json").stdout)[0]["open"] is True


def test_service_status_shows_the_schedule_and_violations(make_settings, fmw) -> None:
    s = make_settings()
    with connect(s, autocommit=True) as conn:
        scheduling.record_fire(conn, CRON_JOB, datetime.now(UTC) - timedelta(hours=3), 7,
                               "succeeded")
        d = {x.name: x for x in sla.list_definitions(conn)}["freshness"]
        sla.open_violation(conn, d, None, "no successful sync yet")
    st = ops_status(s)
    assert st.cron == "0 6 * * *" and st.next_fire is not None
    assert st.next_fire.astimezone(UTC).strftime("%H:%M") == "06:00"
    assert [f.last_run_id for f in st.last_fires] == [7] and st.scheduler_holder is None
    assert [v.sla_name for v in st.open_violations] == ["freshness"]
    out = fmw(s, "service", "status").stdout
    assert "schedule: cron '0 6 * * *' (UTC)" in out and "SLA VIOLATED freshness" in out
    assert json.loads(fmw(s, "service", "status", "--json").stdout)["scheduler_running"] is False


@pytest.mark.parametrize(("attrs", "message"), [
    ({"schedule_cron": "61 * * * *"}, "schedule_cron"),
    ({"schedule_cron": "0 6 * *"}, "5 fields"),
    ({"schedule_timezone": "Mars/Base"}, "schedule_timezone"),
    ({"sync_retries": -1}, "sync_retries"),
    ({"sla_webhook_url": "ftp://x"}, "sla_webhook_url"),
])
def test_bad_ops_settings_are_refused(make_settings, attrs: dict[str, object],
                                      message: str) -> None:
    s = _with(make_settings(migrate=False), **attrs)
    with pytest.raises(ConfigError, match=message):
        OpsConfig.from_settings(s)


def test_ops_settings_defaults_and_overrides(make_settings) -> None:
    s = make_settings(migrate=False)
    assert OpsConfig.from_settings(s) == OpsConfig(timezone="UTC")
    c = OpsConfig.from_settings(_with(s, schedule_cron="off", schedule_interval_minutes=15,
                                      schedule_timezone="Asia/Seoul", sync_retries="5",
                                      sla_webhook_url="https://hooks.example/x",
                                      schedule_catch_up="false"))
    assert c.cron is None and c.interval == timedelta(minutes=15)
    assert c.timezone == "Asia/Seoul" and c.retry.retries == 5 and not c.catch_up
    assert c.webhook_url == "https://hooks.example/x"


def _with(settings: Settings, **attrs: object) -> Settings:
    """Settings with some ops attributes replaced."""
    import dataclasses
    return dataclasses.replace(settings, **attrs)  # type: ignore[arg-type]
