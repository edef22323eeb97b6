"""The daily digest (issue 13): what `fmw status` shows, as one webhook message a day."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import time as dtime
from pathlib import Path

import pytest

from fmw.errors import ConfigError
from scheduler.config import OpsConfig
from scheduler.core import DIGEST_JOB
from tests.scheduler.conftest import FAST, wait_for
from tests.scheduler.servers import serve_webhook

REPO = Path(__file__).resolve().parents[2]


def test_the_digest_time_is_read_and_checked(make_settings):
    assert OpsConfig.from_settings(make_settings()).digest_at == dtime(7, 30)
    assert OpsConfig.from_settings(make_settings(FMW_DIGEST_TIME="off")).digest_at is None
    with pytest.raises(ConfigError, match="digest_time"):
        OpsConfig.from_settings(make_settings(FMW_DIGEST_TIME="25:00"))


def test_the_scheduler_sends_the_digest_at_its_local_time(make_settings, schedulers):
    s = make_settings()
    sent: list[int] = []
    sched = schedulers(s, FAST.with_(cron=None, digest_at=dtime(7, 30), timezone="Asia/Seoul"),
                       digest=lambda: sent.append(1))
    sched.start()
    wait_for(lambda: sched.leader)
    wait_for(lambda: DIGEST_JOB in {j["id"] for j in sched.status()["jobs"]})
    nxt = {j["id"]: j["next_run_time"] for j in sched.status()["jobs"]}[DIGEST_JOB]
    assert nxt.endswith("07:30:00+09:00") or "22:30:00+00:00" in nxt, nxt
    sched._digest_tick()  # what the trigger runs
    assert sent == [1]


def test_fmw_digest_send_posts_the_status_lines_as_one_message(make_settings, pg_url):
    s = make_settings()
    with serve_webhook() as hook:
        env = {**os.environ, "FMW_DATABASE_URL": pg_url, "FMW_SCHEMA": s.schema,
               "FMW_SLA_WEBHOOK_URL": hook.url, "PYTHONPATH": str(REPO)}
        p = subprocess.run([sys.executable, "-m", "fmw", "--config", str(s.config_path),
                            "--data-dir", str(s.data_dir), "digest", "--send"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        wait_for(lambda: hook.bodies)
    [body] = hook.bodies
    assert body["event"] == "daily_digest" and body["text"].startswith("FMW daily digest ")
    sections = {ln["section"] for ln in body["lines"]}
    assert {"runs", "backups", "snapshot", "disk", "sla"} <= sections, sections
    assert "no sync has run yet" in body["text"] and "no backups yet" in body["text"]
    assert body["level"] == "fail" and body["counts"]["fail"] >= 1
