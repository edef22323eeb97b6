"""dev endpoints: start a sync, runs, summary, changes, diffs, health and metrics."""

from __future__ import annotations

import time

import pytest

from ledger import runs
from ledger.db import connect
from tests.api.conftest import GROUP_SIZES, TOTAL, extract_rows
from tests.ledger.helpers import write_csv

#: The second extract: 5 status changes, the esim row removed, 2 rows added, 1 bad row.
CHANGED = 5


def second_extract() -> list[tuple[str, ...]]:
    rows = [r for r in extract_rows() if r[0] != "esim"]
    for i in range(CHANGED):
        r = list(rows[i])
        r[4] = "disabled" if r[4] == "enabled" else "enabled"
        rows[i] = tuple(r)
    rows += [("vonr", "Brand new", "450", "05", "enabled", "", "lee", "2026-11-02"),
             ("vonr", "Brand new", "450", "08", "testing", "", "lee", "2026-11-02"),
             ("vonr", "Bad row", "45", "05", "enabled", "", "lee", "2026-11-02")]
    return rows


def wait_for_run(admin, url: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = admin.get(url).json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, "run did not finish"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def second_run(server, env):
    """POST /api/dev/sync/run on the changed extract; returns (response, finished run)."""
    from tests.api.conftest import client
    admin = client(key=env.key)
    write_csv(env.source, second_extract())
    r = admin.post(f"{server.url}/api/dev/sync/run")
    assert r.status_code == 202, r.text
    run = wait_for_run(admin, server.url + r.headers["Location"])
    deadline = time.monotonic() + 30  # the snapshot is published after the sync
    while admin.get(f"{server.url}/api/v1/vonr").headers["X-Snapshot-Version"] == str(
            env.version):
        assert time.monotonic() < deadline, "no new snapshot"
        time.sleep(0.1)
    return r, run


def test_sync_run_answers_202_with_the_run_and_location(second_run, env):
    r, run = second_run
    body = r.json()
    assert r.headers["Location"] == f"/api/dev/runs/{body['run_id']}" == body["status_url"]
    assert body["run_id"] == run["id"] > env.run_id
    assert run["trigger"] == "api" and run["status"] == "partial"
    assert (run["created"], run["updated"], run["deleted"]) == (2, CHANGED, 1)


def test_run_detail_lists_its_quarantined_rows(server, admin, second_run):
    run = admin.get(f"{server.url}/api/dev/runs/{second_run[1]['id']}").json()
    (bad,) = run["quarantined"]
    assert bad["kind"] == "invalid" and "MCC '45' is not 3 digits" in bad["reason"]
    assert bad["row_no"] == len(second_extract()) + 1
    assert admin.get(f"{server.url}/api/dev/runs/424242").status_code == 404


def test_new_snapshot_is_served_after_an_api_sync(server, http, second_run):
    r = http.get(f"{server.url}/api/v1/esim")
    assert r.status_code == 404 and "esim" not in r.json()["valid_groups"]
    assert http.get(f"{server.url}/api/v1/vonr").headers["X-Total-Count"] == str(
        GROUP_SIZES["vonr"] + 2)


def test_a_running_sync_gives_409_with_its_run_id(server, admin, env):
    conn = connect(env.settings, autocommit=True)
    try:
        runs.acquire_lock(conn, env.settings.schema)  # as another `fmw sync` process would
        run_id = runs.start_run(conn, "cli", ["a"], "UTC")
        r = admin.post(f"{server.url}/api/dev/sync/run")
        assert r.status_code == 409, r.text
        assert r.json()["run_id"] == run_id
        assert r.headers["Location"] == f"/api/dev/runs/{run_id}"
        listed = admin.get(f"{server.url}/api/dev/runs").json()["data"]
        assert listed[0]["id"] == run_id and listed[0]["status"] == "running"
    finally:
        runs.fail_interrupted_runs(conn, env.settings.schema)
        runs.release_lock(conn, env.settings.schema)
        conn.close()


def test_runs_list_newest_first(server, admin, second_run, env):
    data = admin.get(f"{server.url}/api/dev/runs?limit=2").json()["data"]
    assert len(data) == 2 and data[0]["id"] > data[1]["id"]
    assert admin.get(f"{server.url}/api/dev/runs?limit=0").status_code == 400


def test_summary_counts_from_daily_counts(server, admin, second_run):
    s = admin.get(f"{server.url}/api/dev/runs/summary?days=1").json()
    assert s["days"] == 1 and len(s["per_day"]) == 1
    assert s["totals"]["created"] == TOTAL + 2 and s["totals"]["updated"] == CHANGED
    assert s["totals"]["deleted"] == 1 and s["totals"]["errors"] == 1
    assert s["totals"]["runs"] >= 2
    y = admin.get(f"{server.url}/api/dev/runs/summary?days=7&yesterday=true").json()
    assert y["to"] < s["to"] and y["totals"]["created"] == 0 and len(y["per_day"]) == 7
    bad = admin.get(f"{server.url}/api/dev/runs/summary?days=3")
    assert bad.status_code == 400 and bad.json()["valid"] == ["1", "7", "14", "30"]


def test_changes_filter_and_page_through_everything_once(server, admin, second_run):
    run_id = second_run[1]["id"]
    ups = admin.get(f"{server.url}/api/dev/changes?run={run_id}&op=U").json()
    assert len(ups["data"]) == CHANGED and all(c["op"] == "U" for c in ups["data"])
    assert admin.get(f"{server.url}/api/dev/changes?group=esim&op=D").json()["meta"]["count"] == 1
    seen, url, pages = [], f"{server.url}/api/dev/changes?limit=40", 0
    while url:
        r = admin.get(url)
        seen += [c["id"] for c in r.json()["data"]]
        nxt = r.links.get("next", {}).get("url")
        url = server.url + nxt if nxt else None
        pages += 1
    assert len(seen) == len(set(seen)) == TOTAL + 2 + CHANGED + 1
    assert seen == sorted(seen) and pages > 1
    for bad in ("op=X", "since=yesterday", "identity=zz", "since=2026-02-01&until=2026-01-01",
                "run=abc", "limit=5000"):
        assert admin.get(f"{server.url}/api/dev/changes?{bad}").status_code == 400, bad


def test_diff_of_one_change_is_field_level(server, admin, second_run):
    run_id = second_run[1]["id"]
    (u, *_) = admin.get(f"{server.url}/api/dev/changes?run={run_id}&op=U").json()["data"]
    d = admin.get(f"{server.url}/api/dev/changes/diff?id={u['id']}").json()
    (f,) = d["fields"]
    assert f["field"] == "status" and {f["before"], f["after"]} == {"enabled", "disabled"}
    assert d["identity"]["feature_group"] == u["feature_group"]
    (dele,) = admin.get(f"{server.url}/api/dev/changes?run={run_id}&op=D").json()["data"]
    d = admin.get(f"{server.url}/api/dev/changes/diff?id={dele['id']}").json()
    assert {x["field"]: x["after"] for x in d["fields"]}["feature_group"] is None
    assert admin.get(f"{server.url}/api/dev/changes/diff?id=99999999").status_code == 404
    assert admin.get(f"{server.url}/api/dev/changes/diff").status_code == 400


def test_diff_between_two_snapshot_versions(server, admin, env, second_run):
    new = int(admin.get(f"{server.url}/api/v1/vonr").headers["X-Snapshot-Version"])
    d = admin.get(f"{server.url}/api/dev/changes/diff?from={env.version}&to={new}").json()
    assert d["counts"] == {"added": 2, "removed": 1, "changed": CHANGED}
    changed = [r for r in d["data"] if r["change"] == "changed"]
    assert all([f["field"] for f in r["fields"]] == ["status"] for r in changed)
    r = admin.get(f"{server.url}/api/dev/changes/diff?from={env.version}&to=999")
    assert r.status_code == 404


def test_health_reports_database_snapshot_and_last_run(server, admin, second_run):
    h = admin.get(f"{server.url}/api/dev/health").json()
    assert h["status"] == "ok" and h["database"]["status"] == "ok"
    assert h["database"]["revision_current"] is True
    assert h["snapshot"]["version"] >= 2 and h["snapshot"]["age_s"] >= 0
    assert h["last_run"]["id"] >= second_run[1]["id"]
    assert h["scheduler"]["status"]


def test_metrics_per_route_in_json_and_prometheus(server, admin, http):
    for _ in range(3):
        http.get(f"{server.url}/api/v1/rcs")
    m = admin.get(f"{server.url}/api/dev/metrics").json()
    route = next(r for r in m["routes"] if r["route"] == "/api/v1/{feature_group}")
    assert route["count"] >= 3 and 0 < route["p50_ms"] <= route["p95_ms"] <= route["p99_ms"]
    text = admin.get(f"{server.url}/api/dev/metrics?format=prometheus")
    assert text.headers["Content-Type"].startswith("text/plain")
    assert 'fmw_http_requests_total{method="GET",route="/api/v1/{feature_group}",status="2xx"}' \
        in text.text
    assert 'quantile="0.95"' in text.text


def test_sla_lists_the_seeded_definitions_and_needs_a_key(server, admin, http):
    body = admin.get(f"{server.url}/api/dev/sla").json()
    names = {d["name"] for d in body["definitions"]}
    assert len(names) >= 4 and isinstance(body["open"], list)
    assert http.get(f"{server.url}/api/dev/sla").status_code == 401


@pytest.mark.parametrize(("path", "bad"), [
    ("/api/dev/changes?format=csv", "format"),  # issue 13: answered JSON as if it were fine
    ("/api/dev/runs?limt=5", "limt"),
    ("/api/dev/health?verbose=1", "verbose"),
    ("/api/dev/runs/1?errors=5", "errors"),
])
def test_a_parameter_a_dev_route_does_not_take_is_a_400(server, admin, path, bad):
    r = admin.get(f"{server.url}{path}")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["parameter"] == bad and bad in body["detail"]
    assert isinstance(body["valid_parameters"], list)
