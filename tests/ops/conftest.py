"""A small real ledger with a published snapshot, an API key, and the API as a subprocess.

The ledger is built once per module: one real sync of 40 rows (2 groups) and one publish.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from fmw.settings import Settings
from lake.publish import publish_snapshot
from ledger.sync import plan_sync, run_sync
from ops.smoke import fetch
from tests.ledger.helpers import fresh_instance
from tests.ops.nginxproc import NGINX

REPO = Path(__file__).resolve().parents[2]
PAIRS = [("450", "05"), ("450", "08"), ("310", "410"), ("262", "01")]


def rows(n: int = 40) -> list[tuple[str, ...]]:
    return [("volte" if i % 2 else "vonr", f"Feature {i:03d}", *PAIRS[i % len(PAIRS)],
             "enabled" if i % 3 else "disabled", str(i), "kim", "2026-11-01") for i in range(n)]


@dataclass
class OpsEnv:
    settings: Settings
    root: Path
    key: str
    pg_url: str

    @property
    def environ(self) -> dict[str, str]:
        """Environment for `fmw` subprocesses that use this ledger."""
        assert self.settings.config_path is not None
        path = os.environ.get("PATH", "")
        if NGINX is not None:  # /usr/sbin is not on every user's PATH
            path = os.pathsep.join([path, str(Path(NGINX).parent)])
        return {**os.environ, "PATH": path, "FMW_CONFIG": str(self.settings.config_path),
                "FMW_DATABASE_URL": self.pg_url, "FMW_SCHEMA": self.settings.schema,
                "FMW_SNAPSHOTS_DIR": str(self.settings.snapshots_path),
                "FMW_DATA_DIR": str(self.settings.data_dir), "FMW_PROGRESS": "0"}


def build(pg_url: str, root: Path) -> OpsEnv:
    s, key, _ = fresh_instance(pg_url, root, rows(), key_name="ops tests")
    result = run_sync(s, plan_sync(s, trigger="test"))
    publish_snapshot(s, result.run_id)
    return OpsEnv(s, root, key, pg_url)


@pytest.fixture(scope="module")
def ops_env(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsEnv]:
    e = build(pg_url, tmp_path_factory.mktemp("ops"))
    yield e
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{e.settings.schema}" CASCADE')


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def fmw(env: OpsEnv, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `fmw ARGS` as a real subprocess against `env`'s ledger."""
    return subprocess.run([sys.executable, "-m", "fmw", *args], cwd=REPO,
                          env=env.environ, capture_output=True, text=True, timeout=timeout)


@dataclass
class ApiProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_api(env: OpsEnv, log: Path) -> ApiProcess:
    """`api.server.serve` in a subprocess on a free loopback port; waits until it answers."""
    port = free_port()
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "tests.ops.apiserver", str(port)],
                                cwd=REPO, env=env.environ, stdout=fh, stderr=subprocess.STDOUT)
    api = ApiProcess(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while fetch(f"{api.url}/api/v1/features?format=json&limit=1", timeout=2).status == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            api.stop()
            raise RuntimeError(f"the API did not start: {log.read_text(errors='replace')}")
        time.sleep(0.2)
    return api


@pytest.fixture(scope="module")
def api(ops_env: OpsEnv) -> Iterator[ApiProcess]:
    a = start_api(ops_env, ops_env.root / "api.log")
    yield a
    a.stop()
