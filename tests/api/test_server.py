"""Serving: the bind rule, waitress options, `fmw serve` as a real process, and the room rules."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from api.server import TRUSTED_PROXY_HEADERS, check_bind, waitress_options
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
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
