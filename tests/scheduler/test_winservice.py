"""The native Windows service: what it reports to the service manager, driven on Linux.

`StatusMachine` and `ServiceRun` are plain Python: here they run the real API + scheduler host
(`api_hosted`, a real waitress on loopback, a real PostgreSQL) with a recording `report` in
place of SetServiceStatus, and `handle` called as the service manager's dispatcher would. Only
the ctypes calls in `dispatch` are left for Windows (the last test, which runs only there).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fmw.errors import FmwError
from ledger.access import create_key
from ledger.db import connect
from scheduler import install
from scheduler import winservice as ws
from scheduler.host import api_hosted
from tests.scheduler.conftest import FAST, count, runs, wait_for
from tests.scheduler.servers import Reply, csv_body, http_source, serve_feed

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    """Stands in for SetServiceStatus: keeps every status reported, in order."""

    def __init__(self) -> None:
        self.statuses: list[ws.Status] = []
        self.lock = threading.Lock()

    def __call__(self, status: ws.Status) -> None:
        with self.lock:
            self.statuses.append(status)

    def states(self) -> list[str]:
        with self.lock:
            names = [s.name for s in self.statuses]
        return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]

    def last(self) -> ws.Status:
        with self.lock:
            return self.statuses[-1]

    def of(self, state: int) -> list[ws.Status]:
        with self.lock:
            return [s for s in self.statuses if s.state == state]


@contextmanager
def service(run: ws.ServiceRun) -> Iterator[tuple[Recorder, Callable[..., ws.Status]]]:
    """`run` as the service main would (in its own thread); yields the recorder and a join."""
    rec = Recorder()
    result: list[ws.Status] = []
    t = threading.Thread(target=lambda: result.append(run.run(rec)), daemon=True)
    t.start()

    def join(timeout: float = 120) -> ws.Status:
        t.join(timeout)
        assert not t.is_alive(), f"the service main did not return: {rec.states()}"
        return result[0]

    try:
        yield rec, join
    finally:
        if t.is_alive():
            run.handle(ws.SERVICE_CONTROL_STOP)
            t.join(120)



def start_sync(port: int, key: str) -> int:
    """POST /api/dev/sync/run to the API on `port` with the admin `key`; the new run's id."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/dev/sync/run", method="POST",
                                 data=b"", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return int(json.loads(resp.read())["run_id"])

def test_the_module_imports_everywhere_and_dispatch_refuses_outside_windows() -> None:
    r = subprocess.run([sys.executable, "-c", "import scheduler.winservice as w; "
                        "print(w.SERVICE_RUNNING, callable(w.dispatch))"],
                       cwd=REPO, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and r.stdout.split() == ["4", "True"], r.stderr
    if sys.platform == "win32":
        pytest.skip("on Windows dispatch connects to the service manager")
    with pytest.raises(FmwError, match="--as-service is for the Windows service control "
                                       "manager"):
        ws.dispatch("fmw-api", lambda stop, ready: 0, stop_hint_s=80)


def test_fmw_service_run_as_service_says_so_on_linux(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("Linux behaviour")
    (tmp_path / "fmw.toml").write_text('data_dir = "d"\n', encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "fmw", "--config", str(tmp_path / "fmw.toml"),
                        "service", "run", "--as-service", "fmw-api"], cwd=REPO,
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1 and "Windows service control manager" in r.stderr, r.stderr
    assert not (tmp_path / "d" / "logs").exists()  # refused before anything was set up


def test_the_status_machine_start_run_stop() -> None:
    m = ws.StatusMachine(start_hint_s=60, stop_hint_s=80)
    assert m.starting() == ws.Status(ws.SERVICE_START_PENDING, checkpoint=1, wait_hint_ms=60_000)
    assert m.tick() == ws.Status(ws.SERVICE_START_PENDING, checkpoint=2, wait_hint_ms=60_000)
    running = m.ready()
    assert running == ws.Status(ws.SERVICE_RUNNING, controls=ws.SERVICE_ACCEPT_STOP
                                | ws.SERVICE_ACCEPT_PRESHUTDOWN)
    assert m.tick() is None  # nothing pending: no checkpoints
    assert m.control(ws.SERVICE_CONTROL_INTERROGATE) == (ws.NO_ERROR, None)
    assert m.control(0x80) == (ws.ERROR_CALL_NOT_IMPLEMENTED, None)  # a user-defined control
    assert m.control(ws.SERVICE_CONTROL_STOP) == (
        ws.NO_ERROR, ws.Status(ws.SERVICE_STOP_PENDING, checkpoint=1, wait_hint_ms=80_000))
    assert m.control(ws.SERVICE_CONTROL_STOP) == (ws.NO_ERROR, None)  # once is enough
    assert [m.tick().checkpoint for _ in range(3)] == [2, 3, 4]  # type: ignore[union-attr]
    assert m.stopped(1) == ws.Status(ws.SERVICE_STOPPED)  # asked to stop: no recovery
    assert m.stop_reason == "stop"


@pytest.mark.parametrize(("host_code", "service_code"), [(0, 1), (1, 1), (5, 5), (None, 1)])
def test_a_host_that_ends_by_itself_stops_with_an_error_so_recovery_restarts_it(
        host_code: int | None, service_code: int) -> None:
    m = ws.StatusMachine(start_hint_s=60, stop_hint_s=80)
    m.starting()
    m.ready()
    assert m.stopped(host_code) == ws.Status(
        ws.SERVICE_STOPPED, win32_exit_code=ws.ERROR_SERVICE_SPECIFIC_ERROR,
        service_exit_code=service_code)


@pytest.mark.parametrize(("control", "reason"), [(ws.SERVICE_CONTROL_PRESHUTDOWN, "preshutdown"),
                                                 (ws.SERVICE_CONTROL_SHUTDOWN, "shutdown")])
def test_shutdown_controls_stop_like_a_stop(control: int, reason: str) -> None:
    m = ws.StatusMachine(start_hint_s=60, stop_hint_s=80)
    m.starting()
    m.ready()
    code, status = m.control(control)
    assert code == ws.NO_ERROR and status is not None
    assert status.state == ws.SERVICE_STOP_PENDING and m.stop_reason == reason
    assert m.ready() is None


def test_the_service_runs_the_real_api_host_and_stops_on_a_stop_control(make_settings) -> None:
    s = make_settings()
    port = free_port()
    run = ws.ServiceRun("fmw-api", api_hosted(s, FAST, port=port), stop_hint_s=65,
                        tick_s=0.1)
    with service(run) as (rec, join):
        wait_for(lambda: rec.last().state == ws.SERVICE_RUNNING, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json",
                                    timeout=30) as resp:
            assert resp.status == 200
        assert run.handle(ws.SERVICE_CONTROL_STOP) == ws.NO_ERROR
        pending = rec.last()  # reported by the handler itself, before it returned
        assert pending.state == ws.SERVICE_STOP_PENDING and pending.wait_hint_ms == 65_000
        assert pending.controls == 0
        final = join()
    assert final == ws.Status(ws.SERVICE_STOPPED) == rec.last()
    assert rec.states() == ["START_PENDING", "RUNNING", "STOP_PENDING", "STOPPED"]
    assert rec.of(ws.SERVICE_RUNNING)[0].controls == ws.RUNNING_CONTROLS
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5)


@pytest.mark.slow
def test_a_stop_during_a_sync_reports_progress_until_the_sync_finishes(make_settings) -> None:
    with serve_feed([Reply(200, csv_body(30))], open_gate=False) as feed:
        s = make_settings(http_source(feed.url))
        with connect(s, autocommit=True) as conn:
            key = create_key(conn, "tests").secret
        port = free_port()
        config = FAST.with_(stop_grace_s=60)
        run = ws.ServiceRun("fmw-api", api_hosted(s, config, port=port),
                            stop_hint_s=install.stop_timeout_s("api", 60), tick_s=0.1)
        with service(run) as (rec, join):
            wait_for(lambda: rec.last().state == ws.SERVICE_RUNNING, timeout=60)
            run_id = start_sync(port, key)
            assert feed.arrived.wait(30)  # the sync is running, held by the feed
            run.handle(ws.SERVICE_CONTROL_PRESHUTDOWN)
            time.sleep(1.5)
            pending = rec.of(ws.SERVICE_STOP_PENDING)
            assert rec.last().state == ws.SERVICE_STOP_PENDING  # waiting for the sync
            assert [p.checkpoint for p in pending] == list(range(1, len(pending) + 1))
            assert len(pending) >= 5 and pending[0].wait_hint_ms == 120_000
            feed.gate.set()
            assert join() == ws.Status(ws.SERVICE_STOPPED)
    [r] = [r for r in runs(s) if r["id"] == run_id]
    assert r["status"] == "succeeded" and count(s, "features") == 30


def test_a_host_that_cannot_start_is_reported_failed(make_settings) -> None:
    s = make_settings()
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = ws.ServiceRun("fmw-api", api_hosted(s, FAST, port=port), stop_hint_s=65,
                            tick_s=0.1)
        with service(run) as (rec, join):
            final = join()
    assert rec.states() == ["START_PENDING", "STOPPED"]
    assert final.win32_exit_code == ws.ERROR_SERVICE_SPECIFIC_ERROR
    assert final.service_exit_code == FmwError.exit_code


def test_a_host_ignoring_its_stop_is_reported_stopped_after_the_wait_hint() -> None:
    release = threading.Event()

    def stubborn(stop: threading.Event, ready: Callable[[], None]) -> int:
        ready()
        release.wait(30)  # never looks at `stop`
        return 0

    run = ws.ServiceRun("fmw-x", stubborn, stop_hint_s=0.5, tick_s=0.05)
    try:
        with service(run) as (rec, join):
            wait_for(lambda: rec.last().state == ws.SERVICE_RUNNING)
            started = time.monotonic()
            run.handle(ws.SERVICE_CONTROL_STOP)
            assert join(10) == ws.Status(ws.SERVICE_STOPPED)
            assert time.monotonic() - started < 5
    finally:
        release.set()
    assert rec.states() == ["START_PENDING", "RUNNING", "STOP_PENDING", "STOPPED"]


def test_the_service_log_is_rotated_and_one_event_per_line(tmp_path: Path) -> None:
    # A child process: log_to_file replaces the root handlers and, with no console (as a
    # service has), sys.stdout/sys.stderr.
    code = f"""
import logging, sys, warnings
sys.stdout = None
sys.stderr = None
from fmw.logs import log_to_file
h = log_to_file(__import__("pathlib").Path({str(tmp_path / "logs" / "fmw-api.log")!r}))
print(h.maxBytes, h.backupCount, file=open({str(tmp_path / "limits")!r}, "w"))
log = logging.getLogger("fmw.test")
log.info("first line\\nsecond line of the same event")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("with a traceback")
from fmw import render
render.out("a print to a missing console, 한국어")
warnings.warn("a warning")
import threading
t = threading.Thread(target=lambda: 1 / 0, name="worker")
t.start(); t.join()
logging.shutdown()
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "limits").read_text().split() == [str(10 * 1024 * 1024), "8"]
    lines = (tmp_path / "logs" / "fmw-api.log").read_text(encoding="utf-8").splitlines()
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")
    assert all(stamp.match(line) for line in lines), lines  # one event per line
    ours = [line for line in lines if re.search(r" (fmw\.\S+|stdout|py\.warnings): ", line)]
    assert len(ours) == 5, lines
    assert ours[0].endswith("INFO fmw.test: first line\\nsecond line of the same event")
    assert "ERROR fmw.test: with a traceback\\nTraceback" in ours[1]
    assert "ZeroDivisionError" in ours[1]
    assert ours[2].endswith("INFO stdout: a print to a missing console, 한국어")
    assert "WARNING py.warnings:" in ours[3] and "a warning" in ours[3]
    assert "uncaught exception in thread worker" in ours[4] and "ZeroDivisionError" in ours[4]


def _under_wine() -> bool:
    import ctypes
    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")  # type: ignore[attr-defined]


windows_only = pytest.mark.skipif(sys.platform != "win32",
                                  reason="needs the Windows service manager (sc.exe)")


@contextmanager
def native_service(s, tmp_path: Path, toml: str = "") -> Iterator[tuple[install.ServiceSpec,
                                                                       int, Path]]:
    """A throw-away fmw-api-test service registered and started by the plan's own commands
    (paths with spaces and Korean letters); stopped and removed afterwards, whatever happened.
    Yields the spec, the API's port and the service's log file."""
    port = free_port()
    folder = tmp_path / "fmw 서비스"
    cfg = folder / "설정 파일" / "fmw.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(f'data_dir = "{(folder / "data").as_posix()}"\napi_port = {port}\n'
                   f'database_url = "{s.database_url}"\nschema = "{s.schema}"\n{toml}',
                   encoding="utf-8")
    log_dir = folder / "로그"
    spec = install.service_specs(sys.executable, str(folder), str(cfg), str(log_dir),
                                 account="LocalSystem", ui=False)[0]
    # Display names are unique too (error 1078): a real fmw-api may be installed beside it.
    spec = dataclasses.replace(spec, id="fmw-api-test", display_name="FMW API (test)")
    steps = install.native_install_steps(spec) + install.windows_plan("start", [spec], "C:\\")
    if _under_wine():  # Wine 8's sc.exe has no `failureflag` (it answers "not supported")
        steps = [st for st in steps if st.argv[1:2] != ("failureflag",)]
    try:
        install.execute_windows(steps)
        yield spec, port, log_dir / "fmw-api-test.log"
    finally:
        for st in install.windows_plan("remove", [spec], "C:\\"):
            try:  # whatever state the test left it in
                install.execute_windows([st])
            except RuntimeError:
                pass


def sc_query(spec: install.ServiceSpec) -> dict[str, str]:
    """`sc query` as a dict: STATE, CHECKPOINT, WAIT_HINT, WIN32_EXIT_CODE, ..."""
    [query] = install.windows_plan("status", [spec], "C:\\")
    text = install.execute_windows([query])[0]
    return {k: v.split()[0] for k, v in re.findall(r"^\s*([A-Z0-9_]+)\s*:\s*(\S.*)$", text,
                                                    re.M)}


@windows_only
def test_sc_start_and_stop_of_a_native_fmw_api(make_settings, tmp_path: Path) -> None:
    """sc.exe starts the service, the API answers, sc.exe stops it (the log says it stopped on
    request, exit code 0)."""
    with native_service(make_settings(), tmp_path) as (spec, port, log):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json",
                                    timeout=60) as resp:
            assert resp.status == 200
        assert install.parse_sc_query(install.execute_windows(
            install.windows_plan("status", [spec], "C:\\"))[0]) == "RUNNING"
        install.execute_windows(install.windows_plan("stop", [spec], "C:\\"))
        assert sc_query(spec)["WIN32_EXIT_CODE"] == "0"
        text = log.read_text(encoding="utf-8")
        assert "fmw-api-test: running" in text
        assert "fmw-api-test: stop requested" in text
        assert "fmw-api-test: stopped (win32 exit code 0, service exit code 0)" in text
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5)


@windows_only
@pytest.mark.slow
def test_sc_stop_during_a_sync_stays_stop_pending_with_progress_until_it_finishes(
        make_settings, tmp_path: Path) -> None:
    with serve_feed([Reply(200, csv_body(30))], open_gate=False) as feed:
        s = make_settings(http_source(feed.url))
        with connect(s, autocommit=True) as conn:
            key = create_key(conn, "tests").secret
        grace = "service_stop_grace_s = 30\n" + http_source(feed.url)
        with native_service(s, tmp_path, grace) as (spec, port, log):
            run_id = start_sync(port, key)
            assert feed.arrived.wait(60)  # the sync is running, held by the feed
            [stop] = [st for st in install.windows_plan("stop", [spec], "C:\\")
                      if st.kind == "run"]
            install.execute_windows([stop])  # sc stop: no wait
            seen = []
            for _ in range(4):
                time.sleep(1.2)
                seen.append(sc_query(spec))
            assert {q["STATE"] for q in seen} == {"3"}  # STOP_PENDING, waiting for the sync
            assert {q["WAIT_HINT"] for q in seen} == {hex((30 + install.STOP_MARGIN_S) * 1000)}
            checkpoints = [int(q["CHECKPOINT"], 16) for q in seen]
            assert checkpoints == sorted(set(checkpoints)), checkpoints  # it advances
            feed.gate.set()
            install.execute_windows(install.windows_plan("stop", [spec], "C:\\")[1:])  # wait
            assert sc_query(spec)["WIN32_EXIT_CODE"] == "0"
    [r] = [r for r in runs(s) if r["id"] == run_id]
    assert r["status"] == "succeeded" and count(s, "features") == 30
