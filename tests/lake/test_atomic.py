"""Atomic publish: a killed or failing writer never changes what readers see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lake import fsutil
from lake.export import PublishProgress
from lake.health import current_good_version
from lake.layout import POINTER, Layout
from lake.publish import ABANDONED, PublishError, publish_snapshot
from ledger.snapshots import list_snapshots

ROOT = Path(__file__).resolve().parents[2]

#: Runs publish_snapshot and stops for good once the changes file is written (features are done,
#: runs/daily_counts/name_map/mcc_mnc_map and the manifest are not), telling the test so.
CHILD = """
import json, sys, time
from pathlib import Path
from fmw.settings import load_settings
from lake.export import PublishProgress
from lake.publish import publish_snapshot

cfg, data_dir, environ, ready = sys.argv[1:]
settings = load_settings(cfg, data_dir, environ=json.loads(environ))

class StopAfterChanges(PublishProgress):
    def file_written(self, table, path, rows, size):
        if table == "changes":
            Path(ready).write_text(path)
            time.sleep(600)

publish_snapshot(settings, None, progress=StopAfterChanges())
"""


def statuses(conn) -> dict[int, tuple[str, str | None]]:
    return {r.version: (r.status, r.error) for r in list_snapshots(conn)}


@pytest.mark.slow
def test_killed_writer_leaves_the_previous_version_current_and_the_next_publish_cleans_up(
        ledger, tmp_path):
    s = ledger.settings
    publish_snapshot(s, None)
    layout = Layout(s.snapshots_path)
    ready = tmp_path / "ready"
    environ = {"FMW_DATABASE_URL": s.database_url, "FMW_SCHEMA": s.schema,
               "FMW_SNAPSHOTS_DIR": str(s.snapshots_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(s.config_path), str(s.data_dir), json.dumps(environ),
         str(ready)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"the writer ended early: {err.decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the writer never got to the changes table")
            time.sleep(0.02)
        proc.kill()  # SIGKILL on POSIX: no cleanup code of ours runs
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    (orphan,) = list(layout.tmp_dir.iterdir())
    assert orphan.name.startswith(f"v000002.{proc.pid}.")
    assert (orphan / "changes" / "part-0.parquet").is_file()
    assert not (orphan / "manifest.json").exists()
    assert layout.read_pointer() == 1 and layout.versions() == [1]
    assert current_good_version(layout) == (1, [])
    assert statuses(ledger.conn)[2] == ("writing", None)

    m = publish_snapshot(s, None)
    assert m.version == 3 and layout.read_pointer() == 3
    assert list(layout.tmp_dir.iterdir()) == []
    assert statuses(ledger.conn)[2] == ("failed", ABANDONED)
    assert layout.versions() == [1, 3]


@pytest.mark.parametrize("table", ["features", "runs"])  # one per export thread
def test_a_failure_while_writing_removes_the_folder_and_records_the_version_failed(ledger, table):
    publish_snapshot(ledger.settings, None)

    class Broken(PublishProgress):
        def file_written(self, table_, path, rows, size):
            if table_ == table:
                raise OSError(28, "No space left on device")

    with pytest.raises(PublishError, match="v000002 was not published: .*No space left") as info:
        publish_snapshot(ledger.settings, None, progress=Broken())
    assert info.value.version == 2
    layout = Layout(ledger.settings.snapshots_path)
    assert layout.read_pointer() == 1 and layout.versions() == [1]
    assert list(layout.tmp_dir.iterdir()) == []
    status, error = statuses(ledger.conn)[2]
    assert status == "failed" and "No space left" in (error or "")
    assert publish_snapshot(ledger.settings, None).version == 3


def sharing_violation(real, failures: int | None):
    """os.replace/os.rename as Windows behaves while a reader has the target open."""
    calls = {"n": 0}

    def flaky(src, dst, *args, **kwargs):
        calls["n"] += 1
        if failures is None or calls["n"] <= failures:
            raise PermissionError(13, "The process cannot access the file because it is being "
                                      "used by another process", str(dst))
        return real(src, dst, *args, **kwargs)

    return flaky, calls


@pytest.mark.parametrize("call", ["replace", "rename"])
def test_windows_sharing_violations_on_publish_are_retried(ledger, monkeypatch, call):
    publish_snapshot(ledger.settings, None)
    monkeypatch.setattr(fsutil, "DELAY_S", 0.001)
    flaky, calls = sharing_violation(getattr(os, call), failures=3)
    monkeypatch.setattr(os, call, flaky)
    m = publish_snapshot(ledger.settings, None)
    assert calls["n"] >= 4
    layout = Layout(ledger.settings.snapshots_path)
    assert layout.read_pointer() == m.version == 2
    assert not list(layout.root.glob(f".{POINTER}.*"))


def test_a_pointer_that_stays_locked_fails_loudly_and_readers_keep_the_previous_version(
        ledger, monkeypatch):
    publish_snapshot(ledger.settings, None)
    monkeypatch.setattr(fsutil, "DELAY_S", 0.001)
    flaky, calls = sharing_violation(os.replace, failures=None)
    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(PublishError, match="could not switch .*CURRENT.json to v000002"):
        publish_snapshot(ledger.settings, None)
    assert calls["n"] == fsutil.ATTEMPTS
    monkeypatch.undo()
    layout = Layout(ledger.settings.snapshots_path)
    assert layout.read_pointer() == 1 and layout.versions() == [1]
    assert current_good_version(layout) == (1, [])
    assert statuses(ledger.conn)[2][0] == "failed"
    assert not list(layout.root.glob(f".{POINTER}.*")) and list(layout.tmp_dir.iterdir()) == []


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_leftovers_of_dead_or_stale_writers_are_removed_but_live_writers_are_left_alone(ledger):
    s = ledger.settings
    layout = Layout(s.snapshots_path)
    publish_snapshot(s, None)
    dead, live, old = _dead_pid(), os.getppid(), time.time() - 2 * 3600
    made = {
        f"v000007.{dead}.aa": True,  # its process is gone
        f"v000008.{live}.bb": True,  # a live pid, but two hours old
        "deleting-v000001.cc": True,  # a retired version whose delete failed
        f"v000009.{live}.dd": False,  # a live writer
    }
    for name in made:
        (layout.tmp_dir / name / "features").mkdir(parents=True)
        (layout.tmp_dir / name / "features" / "x.parquet").write_bytes(b"x")
    os.utime(layout.tmp_dir / f"v000008.{live}.bb", (old, old))
    pointer_tmp = layout.root / f".{POINTER}.{dead}.tmp"
    pointer_tmp.write_text("{}")
    m = publish_snapshot(s, None)
    assert m.version == 10  # above every version number in use on disk
    assert sorted(p.name for p in layout.tmp_dir.iterdir()) == [
        n for n, gone in made.items() if not gone]
    assert not pointer_tmp.exists()
    assert statuses(ledger.conn)[m.version][0] == "published"


def test_versions_left_writing_for_over_an_hour_are_marked_failed(ledger):
    from ledger.snapshots import allocate_version
    v = allocate_version(ledger.conn, None)
    ledger.conn.execute("UPDATE snapshots SET created_at = %s WHERE version = %s",
                        (datetime.now(UTC) - timedelta(hours=2), v))
    publish_snapshot(ledger.settings, None)
    assert statuses(ledger.conn)[v] == ("failed", ABANDONED)
