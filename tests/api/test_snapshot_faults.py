"""Snapshots damaged under a running API (issue 11, section 4): a real waitress server, real
Parquet versions written per the layout, bytes changed or files cut while it serves.

Each test has its own snapshots folder (v1 and v2, v2 current; `tests/query/conftest.py`
builds them) and its own server; the ledger of the module's `env` provides the allow list and
the admin key. The webhook is a real local HTTP server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from fmw.settings import Settings
from tests.api.conftest import Env, Server
from tests.query.conftest import FEATURES_V1, features_v2, write_version
from tests.scheduler.servers import serve_webhook

GROUP = "features/feature_group=volte/part-0.parquet"
OTHER = "features/feature_group=esim/part-0.parquet"


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    root = tmp_path / "snapshots"
    write_version(root, 1, FEATURES_V1)
    write_version(root, 2, features_v2())
    return root


def settings_for(env: Env, root: Path, check_s: str = "0.2", **extra: str) -> Settings:
    return env.settings_with(FMW_SNAPSHOTS_DIR=str(root), FMW_API_SNAPSHOT_CHECK_S=check_s,
                             FMW_API_WARM_DOWNLOADS="0", **extra)


def wait_for(pred: Callable[[], Any], timeout: float = 10.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > end:
            return got
        time.sleep(0.05)


def flip_one_byte(path: Path) -> None:
    """Same size, and DuckDB still reads the file: the answer is silently wrong. Flipped in
    place (never truncated meanwhile), as a bit flip on disk happens: a periodic check that
    runs during the write must see the same size (a lane failure: it saw a short file)."""
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def health(srv: Server, admin: requests.Session) -> tuple[int, dict[str, Any]]:
    r = admin.get(f"{srv.url}/api/dev/health")
    return r.status_code, r.json()


def test_bytes_changed_under_a_running_api_are_found_by_the_periodic_check(
        env: Env, make_server: Callable[..., Server], snapshots: Path,
        http: requests.Session, admin: requests.Session) -> None:
    """Regression: changed bytes of the current version were served with 200 and health said
    ok, because the checks ran once per version."""
    with serve_webhook() as hook:
        srv = make_server(settings_for(env, snapshots, FMW_SLA_WEBHOOK_URL=hook.url))
        url = f"{srv.url}/api/v1/features/esim?format=json"
        assert http.get(url).headers["X-Snapshot-Version"] == "2"
        flip_one_byte(snapshots / "versions" / "v000002" / OTHER)

        def fallen_back() -> bool:
            return health(srv, admin)[1]["snapshot"]["status"] == "fallback"

        assert wait_for(fallen_back), health(srv, admin)
        code, h = health(srv, admin)
        assert code == 503 and h["status"] == "degraded"
        snap = h["snapshot"]
        assert snap["version"] == 1 and f"{OTHER}: checksum mismatch" in snap["detail"]
        assert snap["integrity"]["check_interval_s"] == 0.2
        assert snap["integrity"]["events"][0]["kind"] == "fallback"
        r = http.get(url, headers={"Cache-Control": "no-cache"})
        assert r.status_code == 200 and r.headers["X-Snapshot-Version"] == "1"
        assert r.json()["meta"]["version"] == 1
        assert "snapshot v000002 is damaged" in r.headers["X-Snapshot-Fallback"]
        sent = wait_for(lambda: hook.events("snapshot_fallback"))
        assert sent and "checksum mismatch" in sent[0]["text"] and sent[0]["version"] == "v000001"
        assert wait_for(lambda: health(srv, admin)[1]["snapshot"]["integrity"]["events"][0]
                        ["alert"] == "sent")


@pytest.mark.parametrize("older_version", [True, False], ids=["fallback", "no-good-version"])
def test_a_file_truncated_under_a_running_api_is_never_a_500(
        env: Env, make_server: Callable[..., Server], tmp_path: Path,
        http: requests.Session, admin: requests.Session, older_version: bool) -> None:
    """Regression: a truncated file made every query of its group 500. Now the failing read
    has the version checked again; the request is answered from the previous good version
    (200 + X-Snapshot-Fallback), or with a 503 problem when there is none."""
    root = tmp_path / "snapshots"
    if older_version:
        write_version(root, 1, FEATURES_V1)
    write_version(root, 2, features_v2())
    srv = make_server(settings_for(env, root, check_s="0"))  # only a failing read can tell
    assert http.get(f"{srv.url}/api/v1/features/rcs?format=json").status_code == 200
    truncate(root / "versions" / "v000002" / GROUP)
    for query in ("volte?format=json", "volte?format=csv", "volte?format=csv&status=enabled",
                  "volte?format=parquet&limit=2", "volte", "all?format=json"):
        r = http.get(f"{srv.url}/api/v1/{query}")
        if older_version:
            assert r.status_code == 200, (query, r.text)
            assert r.headers["X-Snapshot-Version"] == "1", query
            assert "v000002 is damaged" in r.headers["X-Snapshot-Fallback"], query
        else:
            assert r.status_code == 503, (query, r.text)
            problem = r.json()
            assert problem["type"].endswith("no-snapshot"), problem
            assert "passes its integrity check" in problem["detail"]
    pinned = http.get(f"{srv.url}/api/v1/volte?format=json&version=2")
    assert pinned.status_code == 503 and pinned.json()["type"].endswith("snapshot-unavailable")
    code, h = health(srv, admin)
    assert code == 503 and h["status"] == "degraded"
    assert h["snapshot"]["status"] == ("fallback" if older_version else "none")
    assert f"{GROUP}: " in h["snapshot"]["detail"]


def test_a_deleted_pointer_is_served_from_the_newest_good_version_with_a_warning(
        env: Env, make_server: Callable[..., Server], snapshots: Path, http: requests.Session,
        admin: requests.Session, caplog: pytest.LogCaptureFixture) -> None:
    """Regression: a missing CURRENT.json answered "no snapshot has been published yet" although
    good versions were on disk."""
    srv = make_server(settings_for(env, snapshots, check_s="0"))
    url = f"{srv.url}/api/v1/volte?format=json"
    assert http.get(url).headers["X-Snapshot-Version"] == "2"
    (snapshots / "CURRENT.json").unlink()
    with caplog.at_level(logging.WARNING):
        r = http.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["X-Snapshot-Version"] == "2"
    assert r.headers["X-Snapshot-Fallback"] == "CURRENT.json is missing; serving v000002"
    assert any("CURRENT.json is missing; serving v000002" in rec.getMessage()
               for rec in caplog.records)
    code, h = health(srv, admin)
    assert code == 503 and h["snapshot"]["status"] == "fallback"
    assert h["snapshot"]["detail"] == "CURRENT.json is missing; serving v000002"


def test_the_snapshot_watch_stops_with_the_services(env: Env, snapshots: Path) -> None:
    from tests.api.conftest import serve, stop

    srv = serve(settings_for(env, snapshots))
    watch = srv.services.snapshot_watch
    assert watch is not None and watch._thread is not None and watch._thread.daemon
    stop(srv)
    assert not watch._thread.is_alive()
