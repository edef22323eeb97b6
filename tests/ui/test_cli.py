"""`fmw ui` and `fmw up` as real processes: they serve, print their URLs and stop cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.ui.conftest import UiEnv

FMW = [sys.executable, "-m", "fmw"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(e: UiEnv) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMW_")}
    env.update(FMW_DATABASE_URL=e.settings.database_url or "", FMW_SCHEMA=e.settings.schema,
               FMW_SNAPSHOTS_DIR=str(e.settings.snapshots_path), FMW_PROGRESS="0")
    return env


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
        return resp.status, resp.read()


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 90) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip())
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not printed; output: {lines}")


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start(args: list[str], e: UiEnv) -> subprocess.Popen[str]:
    return subprocess.Popen([*FMW, "--config", str(e.settings.config_path), "--data-dir",
                             str(e.settings.data_dir), *args], env=env_for(e), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_fmw_ui_serves_the_explorer_and_stops_on_sigterm(ui_env: UiEnv):
    port = free_port()
    proc = start(["ui", "--port", str(port)], ui_env)
    try:
        lines = wait_for_line(proc, "FMW explorer on")
        assert f"http://127.0.0.1:{port}/" in lines[-1]
        assert get(f"http://127.0.0.1:{port}/_stcore/health") == (200, b"ok")
        status, body = get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"<html" in body.lower()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert port_closed(port)


@pytest.mark.parametrize(("sig", "extra"), [(signal.SIGINT, []),
                                           (signal.SIGTERM, ["--no-scheduler"])])
def test_fmw_up_serves_api_and_explorer_and_stops_both(ui_env: UiEnv, sig: int,
                                                       extra: list[str]):
    ui_port, api_port = free_port(), free_port()
    proc = start(["up", "--port", str(ui_port), "--api-port", str(api_port), *extra], ui_env)
    try:
        lines = wait_for_line(proc, "Press Ctrl+C")
        text = "\n".join(lines)
        assert f"explorer   http://127.0.0.1:{ui_port}/" in text
        assert f"http://127.0.0.1:{api_port}/api/v1/features" in text
        assert ("scheduler  off" in text) == bool(extra)
        status, body = get(f"http://127.0.0.1:{api_port}/api/v1/features?limit=1&format=json")
        assert status == 200 and b'"data"' in body
        assert get(f"http://127.0.0.1:{ui_port}/_stcore/health")[0] == 200
        proc.send_signal(sig)
        assert proc.wait(60) == 0
        rest = proc.stdout.read() if proc.stdout else ""
        assert "FMW stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert port_closed(ui_port) and port_closed(api_port)


def test_fmw_ui_refuses_a_public_address(ui_env: UiEnv):
    proc = start(["ui", "--host", "0.0.0.0", "--port", str(free_port())], ui_env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "ui_allow_public_bind" in out
