"""The service host as a real subprocess (`python -m fmw service run` on an ephemeral port):
a sync started through the dev API, then SIGTERM. With no grace the sync is cancelled and the
ledger is exactly as before; with grace it finishes. Either way the process exits 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fmw.settings import Settings
from ledger import scheduling
from ledger.access import create_key
from ledger.db import connect
from tests.ledger.helpers import csv_source, write_csv
from tests.scheduler.conftest import count, runs, wait_for
from tests.scheduler.servers import Reply, csv_body, http_source, serve_feed

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _fmw_module() -> str:
    """`fmw` once fmw/cli.py registers the ops commands; until then their standalone entry."""
    cli = (REPO / "fmw" / "cli.py").read_text(encoding="utf-8")
    return "fmw" if "cli_ops" in cli else "fmw.cli_ops"


@contextmanager
def service(settings: Settings, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str,
                                                                list[str]]]:
    env = {**os.environ, "FMW_DATABASE_URL": settings.database_url or "",
           "FMW_SCHEMA": settings.schema, "FMW_SNAPSHOTS_DIR": str(settings.snapshots_path),
           "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", _fmw_module(), "--config", str(settings.config_path),
         "--data-dir", str(settings.data_dir), "service", "run", "--port", "0", *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "API on http://" in line:
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert found.wait(60), "".join(lines)
        url = re.search(r"API on (http://[\d.]+:\d+)", "".join(lines))
        assert url is not None
        yield proc, url.group(1), lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def post_sync(base: str, key: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{base}/api/dev/sync/run", method="POST", data=b"",
                                 headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 202
        return json.loads(resp.read())  # type: ignore[no-any-return]


def api_key(settings: Settings) -> str:
    with connect(settings, autocommit=True) as conn:
        return create_key(conn, "tests").secret


@pytest.mark.slow
def test_sigterm_during_a_big_sync_cancels_it_and_keeps_the_ledger_intact(
        make_settings, tmp_path: Path) -> None:
    rows = [("volte", f"Feature {i:06d}", "450", f"{i % 90 + 10:02d}", "enabled", str(i % 7),
             "kim", "2026-11-01") for i in range(300_000)]
    s = make_settings(csv_source("big", write_csv(tmp_path / "big.csv", rows)))
    key = api_key(s)
    with service(s, "--stop-grace", "0") as (proc, base, lines):
        run_id = post_sync(base, key)["run_id"]
        wait_for(lambda: any(r["id"] == run_id and r["status"] == "running" for r in runs(s)))
        time.sleep(1.0)  # into the COPY / SQL phases
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, "".join(lines)
    [run] = [r for r in runs(s) if r["id"] == run_id]
    assert run["status"] == "failed" and run["error_summary"].startswith("aborted:"), run
    assert count(s, "features") == 0 and count(s, "changes") == 0
    with connect(s, autocommit=True) as conn:
        assert scheduling.sync_lock_free(conn, s.schema)
        assert scheduling.own_running_run(conn) is None
    log = "".join(lines)
    assert "cancelling it" in log and "FMW service stopped" in log


def test_sigterm_lets_a_running_sync_finish_within_the_grace(make_settings) -> None:
    with serve_feed([Reply(200, csv_body(30))], open_gate=False) as feed:
        s = make_settings(http_source(feed.url))
        key = api_key(s)
        with service(s, "--stop-grace", "60") as (proc, base, lines):
            run_id = post_sync(base, key)["run_id"]
            assert feed.arrived.wait(30)  # the sync is running, held by the feed
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert proc.poll() is None  # waiting for the sync
            feed.gate.set()
            assert proc.wait(60) == 0, "".join(lines)
    [run] = [r for r in runs(s) if r["id"] == run_id]
    assert run["status"] == "succeeded" and count(s, "features") == 30


def test_sigint_with_nothing_running_stops_at_once(make_settings) -> None:
    s = make_settings()
    with service(s) as (proc, base, lines):
        with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=30) as resp:
            assert resp.status == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, "".join(lines)
    assert time.monotonic() - started < 15


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_ui_host_serves_streamlit_and_stops_on_sigterm(make_settings) -> None:
    s = make_settings()
    env = {**os.environ, "FMW_DATABASE_URL": s.database_url or "", "FMW_SCHEMA": s.schema,
           "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", _fmw_module(), "--config", str(s.config_path),
                             "--data-dir", str(s.data_dir), "service", "run", "--ui",
                             "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        if not (REPO / "ui" / "app.py").exists():  # before the UI existed: a clear refusal
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 1 and "the Streamlit UI is not available" in out
            return
        url = f"http://127.0.0.1:{port}/_stcore/health"
        wait_for(lambda: _answers(url), timeout=90, step=0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert not _answers(url)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
