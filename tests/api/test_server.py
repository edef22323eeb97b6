"""Serving: the bind rule, waitress options, `fmw serve` as a real process, and the room rules."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from api.server import (
    TRUSTED_PROXY_HEADERS,
    QueueWarnings,
    check_bind,
    use_channel,
    waitress_options,
)
from fmw.errors import ConfigError
from tests.api.conftest import with_api

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_loopback_binds_need_nothing(env, host):
    check_bind(env.settings, host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_other_binds_need_the_setting_and_warn(env, host, caplog):
    with pytest.raises(ConfigError, match="api_allow_public_bind"):
        check_bind(env.settings, host)
    check_bind(with_api(env.settings, api_allow_public_bind=True), host)
    assert "reachable from other machines" in caplog.text


def test_waitress_options_follow_the_settings(env):
    opts = waitress_options(env.settings, "127.0.0.1", 8000)
    assert "trusted_proxy" not in opts and opts["clear_untrusted_proxy_headers"] is True
    tuned = with_api(env.settings, api_threads=3, api_connection_limit=50,
                     api_channel_timeout_s=9, api_trusted_proxy="127.0.0.1")
    opts = waitress_options(tuned, "127.0.0.1", 8000)
    assert (opts["threads"], opts["connection_limit"], opts["channel_timeout"]) == (3, 50, 9)
    assert opts["trusted_proxy"] == "127.0.0.1" and opts["trusted_proxy_count"] == 1
    assert opts["trusted_proxy_headers"] == set(TRUSTED_PROXY_HEADERS) == {
        "x-forwarded-for", "x-forwarded-proto"}
    with pytest.raises(ConfigError, match="127.0.0.1"):
        waitress_options(with_api(env.settings, api_trusted_proxy="*"), "127.0.0.1", 8000)


def test_a_channel_is_not_writable_while_its_worker_holds_the_buffer():
    # waitress would call such a channel writable, and its main loop would spin on it while
    # the worker (which sends the bytes itself) waits for the GIL: see api.server.
    from waitress.channel import HTTPChannel
    from waitress.server import create_server
    srv = use_channel(create_server(lambda environ, start_response: [], host="127.0.0.1",
                                    port=0))
    a, b = socket.socketpair()
    ch = srv.channel_class(srv, a, ("127.0.0.1", 1), srv.adj, map={})
    held, done = threading.Event(), threading.Event()

    def worker() -> None:
        with ch.outbuf_lock:
            held.set()
            done.wait(10)

    t = threading.Thread(target=worker)
    try:
        assert not ch.writable()  # nothing to send
        ch.requests, ch.total_outbufs_len = [object()], 10
        assert ch.writable()  # bytes left and the lock is free: the loop sends them
        t.start()
        assert held.wait(10)
        assert HTTPChannel.writable(ch)  # what waitress says
        assert not ch.writable()  # what we say: the worker is sending
        ch.total_outbufs_len = srv.adj.outbuf_high_watermark + 1
        assert ch.writable()  # over the mark the worker waits for the loop to drain
        ch.total_outbufs_len = 10
        ch.requests = []
        assert ch.writable()  # no task: the leftovers are the loop's to send
        ch.requests, ch.will_close = [object()], True
        assert ch.writable()  # closing: the loop must get to it
    finally:
        done.set()
        if t.is_alive():
            t.join(10)
        ch.requests, ch.total_outbufs_len, ch.will_close = [], 0, False
        ch.close()
        b.close()
        srv.trigger.close()
        srv.close()


def test_many_clients_at_once_get_every_byte(server, env):
    # 40 keep-alive clients on 8 worker threads: every answer complete and in order, pages and
    # a multi-megabyte CSV alike (waitress's channel with our writable rule).
    whole = requests.get(f"{server.url}/api/v1/features", timeout=60)
    assert whole.status_code == 200 and len(whole.content) > 10_000

    def client(i: int) -> list[tuple[int, int, bool]]:
        out = []
        with requests.Session() as s:
            for k in range(6):
                if (i + k) % 5 == 0:
                    r = s.get(f"{server.url}/api/v1/features", timeout=60)
                    out.append((r.status_code, len(r.content), r.content == whole.content))
                else:
                    r = s.get(f"{server.url}/api/v1/features?format=json&limit={1 + k}",
                              timeout=60)
                    out.append((r.status_code, len(r.json()["data"]), True))
        return out

    with ThreadPoolExecutor(40) as pool:
        results = [x for chunk in pool.map(client, range(40)) for x in chunk]
    assert len(results) == 240
    assert all(code == 200 and same for code, _, same in results)
    assert sorted({n for code, n, _ in results if n < 10}) == [1, 2, 3, 4, 5, 6]


def test_waitress_queue_warnings_are_throttled(caplog):
    import logging
    logger = logging.getLogger("fmw-test-queue")
    logger.addFilter(QueueWarnings(interval_s=0.2))
    with caplog.at_level(logging.WARNING, logger="fmw-test-queue"):
        for depth in (1, 5, 3):
            logger.warning("Task queue depth is %d", depth)
        time.sleep(0.25)
        logger.warning("Task queue depth is %d", 2)
    lines = [r.getMessage() for r in caplog.records if r.name == "fmw-test-queue"]
    assert lines == ["Task queue depth is 1",
                     "Task queue depth is 2 (deepest 5; 2 more such warnings in the last 0.2 s "
                     "not shown)"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="Ctrl+C is a POSIX signal to a child here; on "
                    "Windows a service stop goes through the service manager, tested in "
                    "tests/scheduler/test_winservice.py")
def test_fmw_serve_runs_the_api_until_interrupted(env):
    port = _free_port()
    code = ("import argparse, sys\n"
            "from fmw.cli_api import register\n"
            "from fmw.settings import load_settings\n"
            "p = argparse.ArgumentParser(prog='fmw')\n"
            "register(p.add_subparsers(dest='command', required=True))\n"
            "a = p.parse_args(sys.argv[2:])\n"
            "sys.exit(a.func(a, load_settings(sys.argv[1])))\n")
    environ = {**os.environ, "FMW_DATABASE_URL": env.settings.database_url or "",
               "FMW_SCHEMA": env.settings.schema, "FMW_DATA_DIR": str(env.settings.data_dir),
               "FMW_SNAPSHOTS_DIR": str(env.settings.snapshots_path)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(env.settings.config_path), "serve",
                             "--port", str(port)], cwd=ROOT, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/v1/esim", timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert r.headers["Server"] == "fmw"
        assert r.headers["X-Snapshot-Version"] == str(env.version)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(proc.stdout.read().decode() if proc.stdout else "")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "api").glob("*.py")), ids=lambda p: p.name)
def test_api_imports_only_its_allowed_rooms_and_builds_no_sql(path):
    allowed = {"api", "query", "ledger", "scheduler", "fmw"}
    ours = {"api", "query", "ledger", "scheduler", "fmw", "lake", "ui", "deploy"}
    used = _imports(path) & ours
    assert used <= allowed, f"{path.name} imports {used - allowed}"
    assert not _imports(path) & {"psycopg", "duckdb", "sqlalchemy"}, path.name
    text = path.read_text(encoding="utf-8")
    for word in ("SELECT ", "INSERT ", "UPDATE ", "DELETE FROM"):
        assert word not in text, f"{path.name} contains SQL ({word.strip()})"


@pytest.mark.parametrize("path", sorted((ROOT / "api").glob("*.py")), ids=lambda p: p.name)
def test_api_modules_stay_small(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) < 400
