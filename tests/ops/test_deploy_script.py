"""deploy/deploy.ps1 only calls `fmw` commands (checked against the real parser), in the order
a safe deploy needs; and the rollback path it takes, run for real with `fmw` subprocesses
against a real API: smoke fails, the pre-deploy backup comes back, smoke passes."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from fmw import cli, cli_ops
from ledger.db import connect
from ledger.dump import fingerprint
from tests.ops.conftest import build, fmw, free_port, start_api
from tests.ops.nginxproc import NGINX

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PS1 = (DEPLOY / "deploy.ps1").read_text(encoding="ascii")
CALL = re.compile(r"(?:Invoke-Fmw|Get-FmwOutput) \$Live ([^)}\n]*)")


def parser() -> argparse.ArgumentParser:
    p = cli.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    if "service" not in sub.choices:
        cli_ops.register(sub)
    return p


def calls() -> list[tuple[int, list[str]]]:
    """(line number, fmw arguments) of every fmw call in deploy.ps1; $Variables become '1'."""
    out = []
    for no, line in enumerate(PS1.splitlines(), 1):
        if line.lstrip().startswith(("#", "function")):
            continue
        for m in CALL.finditer(line):
            args = m.group(1).split('"', 1)[0].split()
            out.append((no, ["1" if a.startswith("$") else a for a in args]))
    return out


def test_every_fmw_call_in_deploy_ps1_is_a_valid_command():
    found = calls()
    assert len(found) >= 10
    p = parser()
    for _, args in found:
        p.parse_args(["--config", "fmw.toml", *args])  # SystemExit here names the bad call


def test_deploy_ps1_backs_up_first_checks_last_and_rolls_back_with_the_backup():
    seq = [" ".join(a) for _, a in calls()]
    first = {cmd: seq.index(cmd) for cmd in reversed(seq)}
    assert first["backup --tag pre-deploy --json"] < first["service stop"] < first["db upgrade"]
    assert first["db upgrade"] < first["service start"] < first["smoke --wait 1"]
    rollback = seq[seq.index("smoke --wait 1") + 1:]
    assert rollback[:2] == ["service stop", "restore 1 --replace --yes --if-schema-changed"]
    record = "deploy record --version 1 --started 1 --outcome"
    assert rollback[-4:] == ["service start", "smoke --wait 1",
                             f"{record} failed --rolled-back --detail 1",  # issue 13
                             f"{record} succeeded"]
    # Besides fmw, the script runs only Python (to create the venv and pip install the wheel).
    natives = re.findall(r"(?<![&\w])& (\$\w+|\(Join-Path \$\w+ \"Scripts\\python\.exe\"\)|\S+)",
                         PS1)
    assert set(natives) == {"$Python", '(Join-Path $venv "Scripts\\python.exe")',
                            '(Join-Path $Target "Scripts\\python.exe")'}, natives


def test_deploy_bat_runs_the_script_and_passes_its_exit_code():
    bat = (DEPLOY / "deploy.bat").read_bytes()
    assert b"\r\n" in bat
    text = bat.decode("ascii")
    assert 'powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0deploy.ps1" %*' in text
    assert "exit /b %ERRORLEVEL%" in text


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="PowerShell is not installed")
def test_deploy_ps1_parses_in_powershell():
    cmd = ("$e = $null; [System.Management.Automation.Language.Parser]::ParseFile("
           f"'{DEPLOY / 'deploy.ps1'}', [ref]$null, [ref]$e) | Out-Null; $e.Count")
    r = subprocess.run(["pwsh", "-NoProfile", "-Command", cmd], capture_output=True, text=True)
    assert r.stdout.strip() == "0", r.stdout + r.stderr


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
@pytest.mark.skipif(sys.platform == "win32", reason="the lane's nginx is Debian's, which the Windows "
                    "Python cannot start; this check of the shipped config runs on Linux")
def test_the_shipped_windows_nginx_conf_includes_the_rendered_file(tmp_path):
    from ledger.access import parse_entries
    from ops.nginx import ProxyConfig, render
    (tmp_path / "conf").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "fmw.conf").write_text(render(parse_entries([]), ProxyConfig(port=8080)))
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "include C:/FMW/deploy/nginx/fmw.conf;" in text
    text = text.replace("C:/FMW/deploy/nginx/fmw.conf", (tmp_path / "fmw.conf").as_posix())
    (tmp_path / "conf" / "nginx.conf").write_text(text)
    mime = Path("/etc/nginx/mime.types")
    (tmp_path / "conf" / "mime.types").write_text(
        mime.read_text() if mime.is_file() else "types { text/html html; }\n")
    assert NGINX is not None
    r = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "logs/error.log"),
                        "-c", str(tmp_path / "conf" / "nginx.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_rollback_path_of_a_failed_deploy(pg_url, tmp_path):
    env = build(pg_url, tmp_path)
    api = None
    try:
        r = fmw(env, "backup", "--tag", "pre-deploy", "--json")  # step 1, old version
        assert r.returncode == 0, r.stderr
        name = json.loads(r.stdout)["name"]
        with connect(env.settings, autocommit=True) as conn:
            before = fingerprint(conn, env.settings.schema)
            # the new version's migration changed the schema, and its service does not come up
            conn.execute("CREATE TABLE from_new_version (x int)")
            conn.execute("UPDATE alembic_version SET version_num = '9999'")
        down = f"http://127.0.0.1:{free_port()}"
        r = fmw(env, "smoke", "--url", down, "--wait", "1")
        assert r.returncode == 1 and "FAIL  reachable" in r.stdout
        # rollback: restore the pre-deploy backup because the schema moved
        r = fmw(env, "restore", name, "--replace", "--yes", "--if-schema-changed")
        assert r.returncode == 0, r.stdout + r.stderr
        with connect(env.settings, autocommit=True) as conn:
            assert fingerprint(conn, env.settings.schema) == before
        api = start_api(env, tmp_path / "api.log")  # the old version's service again
        r = fmw(env, "smoke", "--url", api.url, "--wait", "10")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        if api is not None:
            api.stop()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{env.settings.schema}" CASCADE')
