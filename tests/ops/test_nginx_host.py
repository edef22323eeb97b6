"""`fmw service run --nginx` (the fmw-nginx service's host) with Debian's real nginx: started in
the foreground with nginx_prefix/nginx_main_conf, serving until the stop event, stopped with
`nginx -s quit`; an nginx that exits by itself makes the host fail so recovery restarts it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from fmw.errors import ConfigError
from fmw.settings import Settings, load_settings
from ops.nginx import main_conf
from ops.nginx_host import nginx_commands, serve_nginx
from tests.ops.conftest import free_port
from tests.ops.nginxproc import NGINX

REPO = Path(__file__).resolve().parents[2]

needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install "
                                                       "nginx)")


def nginx_settings(tmp_path: Path, port: int, nginx: str | None = NGINX) -> Settings:
    work = tmp_path / "nginx prefix"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    include = work / "site.conf"
    include.write_text(f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 'up'; }} }}\n",
                       encoding="utf-8", newline="\n")
    user = "root" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    (work / "nginx.conf").write_text(main_conf(include, work, user=user), encoding="utf-8",
                                     newline="\n")
    cfg = tmp_path / "fmw.toml"
    cfg.write_text(f'data_dir = "data"\nnginx_exe = "{nginx}"\nnginx_prefix = "nginx prefix"\n'
                   'nginx_main_conf = "nginx prefix/nginx.conf"\n', encoding="utf-8")
    return load_settings(cfg, environ={})


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.read() == b"up"
    except OSError:
        return False


def test_the_commands_use_the_prefix_and_main_conf(tmp_path: Path) -> None:
    s = nginx_settings(tmp_path, 1, nginx="/opt/nginx/nginx")
    prefix = str(tmp_path / "nginx prefix")
    cmds = nginx_commands(s, "/opt/nginx/nginx")
    base = ("/opt/nginx/nginx", "-p", prefix, "-c", f"{prefix}/nginx.conf")
    assert cmds.run == base
    assert cmds.quit == (*base, "-s", "quit") and cmds.stop == (*base, "-s", "stop")


def test_no_nginx_is_a_configuration_error(tmp_path: Path) -> None:
    s = nginx_settings(tmp_path, 1, nginx=str(tmp_path / "missing" / "nginx.exe"))
    with pytest.raises(ConfigError, match="nginx.exe not found: set nginx_exe"):
        serve_nginx(s, threading.Event())


@needs_nginx
def test_nginx_serves_until_the_stop_event_then_quits(tmp_path: Path, caplog) -> None:
    port = free_port()
    s = nginx_settings(tmp_path, port)
    stop, ready = threading.Event(), threading.Event()
    result: list[int] = []
    caplog.set_level(logging.INFO)
    t = threading.Thread(target=lambda: result.append(serve_nginx(
        s, stop, ready.set, output=logging.getLogger("fmw.nginx"))), daemon=True)
    t.start()
    assert ready.wait(20)
    deadline = time.monotonic() + 20
    while not answers(port):
        assert time.monotonic() < deadline, (tmp_path / "nginx prefix" / "error.log").read_text()
        time.sleep(0.1)
    started = time.monotonic()
    stop.set()
    t.join(30)
    assert result == [0] and time.monotonic() - started < 8  # quit, not the kill after grace
    assert not answers(port)
    with socket.socket() as sock:  # nothing listens any more: no nginx worker left behind
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        sock.bind(("127.0.0.1", port))
    assert "nginx stopped (exit code 0)" in caplog.text


@needs_nginx
def test_an_nginx_that_cannot_start_fails_the_host(tmp_path: Path, caplog) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = nginx_settings(tmp_path, port)
        caplog.set_level(logging.INFO)
        called: list[bool] = []
        code = serve_nginx(s, threading.Event(), lambda: called.append(True),
                           output=logging.getLogger("fmw.nginx"))
    assert code == 1 and not called
    assert "nginx exited at start with code 1" in caplog.text
    assert "still could not bind()" in caplog.text  # nginx's own words, through the pump


@needs_nginx
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_fmw_service_run_nginx_in_a_console_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    s = nginx_settings(tmp_path, port)
    proc = subprocess.Popen([sys.executable, "-m", "fmw", "--config", str(s.config_path),
                             "service", "run", "--nginx"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "FMW nginx running" in out and "nginx stopped (exit code 0)" in out
    assert not answers(port)
