"""`fmw status`: the assessment as a pure function, and the screen of a real installation."""

from __future__ import annotations

import json
import socket
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.db import connect
from ledger.problems import ProblemSummary
from ops.backup import create_backup
from ops.config import with_values
from ops.rehearse import verify_backup
from ops.status import Disk, Facts, Limits, Probe, RunFact, assess, gather, limits_from
from tests.ops.conftest import fmw
from tests.ops.wsstub import WsStub

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LIMITS = Limits(snapshot_max_age=timedelta(hours=26), disk_min_free_bytes=5 * 2**30)


def healthy() -> Facts:
    return Facts(
        now=NOW,
        probes=(Probe("api", True, "answers"), Probe("explorer", True, "accepts", required=False),
                Probe("nginx", True, "accepts")),
        runs=(RunFact(7, "succeeded", NOW - timedelta(hours=3), NOW - timedelta(hours=3), 1, 2, 0,
                      None),
              RunFact(6, "failed", NOW - timedelta(hours=27), None, 0, 0, 0, "boom")),
        database_error=None, scheduler={"application_name": "fmw-scheduler", "since": "x"},
        scheduler_known=True, snapshot_version=12, snapshot_created=NOW - timedelta(hours=3),
        snapshot_problems=(), sla_open=(),
        disks=(Disk("data", Path("/srv"), 50 * 2**30, 100 * 2**30),),
        backup_count=3, backup_latest=NOW - timedelta(hours=7), backup_latest_name="fmw-x",
        backup_verified={"ok": True, "at": "2026-11-22T04:00:00+00:00", "backup": "fmw-y"},
        backup_dir=Path("/srv/fmw/backups"), backup_copy_dir=Path("//nas/fmw"),
        backup_copy_names=("fmw-w", "fmw-x"))


def levels(lines, section):
    return [ln.level for ln in lines if ln.section == section]


def test_a_healthy_installation_is_all_ok():
    lines = assess(healthy(), LIMITS)
    assert {ln.level for ln in lines} == {"ok"}
    assert {ln.section for ln in lines} == {"services", "runs", "snapshot", "sla", "disk",
                                            "backups"}
    text = "\n".join(ln.text for ln in lines)
    assert "last run 7 succeeded 3.0 h ago" in text and "v000012 created 3.0 h ago" in text
    assert "before that: 6:failed" in text and "50.0 GiB free (50%)" in text
    assert "restore rehearsal passed 2 days ago (backup fmw-y)" in text


@pytest.mark.parametrize(("change", "section", "level", "words"), [
    ({"probes": (Probe("api", False, "refused"),)}, "services", "fail", "api: refused"),
    ({"probes": (Probe("explorer", False, "refused", required=False),)}, "services", "warn",
     "explorer"),
    ({"scheduler": None}, "services", "fail", "scheduler: not running"),
    ({"runs": None, "database_error": "down"}, "runs", "fail", "database unavailable: down"),
    ({"runs": ()}, "runs", "warn", "no sync has run yet"),
    ({"runs": (RunFact(8, "failed", NOW, NOW, 0, 0, 0, "source 'a': missing"),)}, "runs",
     "fail", "last run 8 failed 0 min ago (created 0, updated 0, deleted 0): source 'a'"),
    ({"runs": (RunFact(8, "partial", NOW, NOW, 0, 0, 0, None),)}, "runs", "warn", "partial"),
    ({"snapshot_created": NOW - timedelta(hours=30)}, "snapshot", "warn", "older than 26 h"),
    ({"snapshot_version": None, "snapshot_problems": ("v000003: checksum mismatch",)},
     "snapshot", "fail", "no usable snapshot: v000003: checksum mismatch"),
    ({"sla_open": ("freshness: no successful sync for 30 h",)}, "sla", "fail", "freshness"),
    ({"sla_open": None}, "sla", "warn", "not available"),
    ({"disks": (Disk("data", Path("/srv"), 2**30, 100 * 2**30),)}, "disk", "warn", "1.0 GiB"),
    ({"backup_latest": None, "backup_count": 0}, "backups", "fail", "no backups yet"),
    ({"backup_latest": NOW - timedelta(days=3)}, "backups", "warn", "3 days ago"),
    ({"backup_verified": None}, "backups", "warn", "no restore rehearsal yet"),
    ({"backup_verified": {"ok": False, "at": "2026-11-24T04:00:00+00:00", "backup": "fmw-z"}},
     "backups", "fail", "the last restore rehearsal FAILED 5.0 h ago (backup fmw-z)"),
    ({"backup_verified": {"ok": True, "at": "2026-11-10T04:00:00+00:00", "backup": "fmw-z"}},
     "backups", "warn", "restore rehearsal passed 14 days ago"),
    # issue 13: every backup on the disk it protects
    ({"backup_copy_dir": None}, "backups", "warn", "every backup is on the data disk"),
    ({"backup_copy_same_disk": True}, "backups", "warn", "on the same disk as the data"),
    ({"backup_copy_names": ("fmw-w",)}, "backups", "warn", "fmw-x has no copy in //nas/fmw"),
    # issue 13: the v1 p95 from every API process, kept in the ledger
    ({"latency": (("24 h", 1200, 5000.0),)}, "api", "warn",
     "v1 p95 at most 5 s over the last 24 h (1,200 requests"),
    ({"latency": (("30 days", 9, 250.0),)}, "api", "ok", "v1 p95 at most 0.25 s"),
    # issue 13: bad rows as open items, oldest first
    ({"problems": ProblemSummary(8, 0, 1, ({"source": "a", "reason": "MCC '45' is not 3 digits",
                                            "first_run_id": 3,
                                            "first_seen_at": NOW - timedelta(days=4)},))},
     "data", "warn", "8 bad rows open (0 new today, 1 fixed today); oldest: source 'a', MCC '45'"
     " is not 3 digits (since run 3, 4 days ago)"),
    ({"problems": ProblemSummary(0, 0, 2, ())}, "data", "ok", "0 bad rows open"),
])
def test_each_problem_is_named_with_its_level(change, section, level, words):
    lines = assess(replace(healthy(), **change), LIMITS)
    hits = [ln for ln in lines if ln.section == section and words in ln.text]
    assert hits and hits[0].level == level, [ln for ln in lines if ln.section == section]


def test_gather_on_a_running_installation(ops_env, api, tmp_path):
    # the copy folder on another file system than the data (tmpfs), as a share would be
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == ops_env.settings.data_dir.stat().st_dev:
        pytest.skip("needs a second file system for the backup copy (/dev/shm)")
    copy_dir = Path(tempfile.mkdtemp(dir=shm))
    b = create_backup(with_values(ops_env.settings, backup_copy_dir=str(copy_dir)),
                      tag="status")
    verify_backup(ops_env.settings, b)
    ui = WsStub()
    listener = socket.create_server(("127.0.0.1", 0))  # Nginx's port (only a TCP check)
    scheduling = pytest.importorskip("ledger.scheduling")
    holder = connect(ops_env.settings, autocommit=True, application_name="fmw-scheduler")
    try:
        assert scheduling.try_scheduler_lock(holder, ops_env.settings.schema)
        s = with_values(ops_env.settings, api_port=int(api.url.rsplit(":", 1)[1]),
                        ui_port=ui.port, nginx_listen="127.0.0.1",
                        nginx_port=listener.getsockname()[1], disk_min_free_gb=0.001,
                        backup_copy_dir=str(copy_dir))
        facts = gather(s)
        lines = assess(facts, limits_from(s))
    finally:
        holder.close()
        listener.close()
        ui.stop()
    assert [ln for ln in lines if ln.level != "ok"] == []
    assert facts.runs is not None and facts.runs[0].status == "succeeded"
    assert facts.snapshot_version == 1 and facts.backup_latest_name == b.name
    assert facts.sla_open == () and facts.scheduler is not None


def test_the_status_screen_as_an_admin_sees_it(ops_env):
    r = fmw(ops_env, "status")
    out = r.stdout
    for section in ("services:", "runs:", "snapshot:", "sla:", "disk:", "backups:"):
        assert f"\n{section}\n" in "\n" + out, out
    assert "last run 1 succeeded" in out and "v000001 created" in out
    assert out.rstrip().splitlines()[-1] in ("overall: OK", "overall: WARN", "overall: FAIL")
    assert r.returncode == (1 if "FAIL" in out else 0)
    doc = json.loads(fmw(ops_env, "status", "--json").stdout)
    assert doc["status"] in ("ok", "warn", "fail") and doc["lines"]
