"""Dev page through AppTest, talking to a real API (waitress on a loopback port)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from api.app import create_app
from api.security import RateLimiter
from api.server import start
from api.services import build_services
from tests.ui.conftest import UiEnv, page_app
from ui import context
from ui.config import ui_config
from ui.devapi import DevApi, DevApiError


@pytest.fixture(scope="module")
def api_url(ui_env: UiEnv) -> Iterator[str]:
    svc = build_services(ui_env.settings, dev_rate=RateLimiter(100_000))
    running = start(create_app(ui_env.settings, svc), ui_env.settings)
    yield running.url
    running.stop()
    svc.close()


@pytest.fixture
def dev(ui_env: UiEnv, api_url: str) -> Iterator[UiEnv]:
    context.use(ui_env.settings, dataclasses.replace(ui_config(ui_env.settings),
                                                     api_url=api_url))
    yield ui_env
    context._injected = None


def unlock(at, key: str):
    at.text_input(key="dev_key_input").input(key)
    return at.button[0].click().run()


def test_without_a_key_the_dev_page_shows_only_the_key_form(dev: UiEnv):
    at = page_app("dev").run()
    assert not at.exception
    assert [t.key for t in at.text_input] == ["dev_key_input"]
    assert not at.dataframe and not at.tabs and not at.get("data_editor")
    assert not at.metric


def test_a_wrong_key_is_refused_and_nothing_is_shown(dev: UiEnv):
    at = unlock(page_app("dev").run(), "fmw_nope_not-a-key")
    assert any("not valid" in e.value for e in at.error)
    assert not at.dataframe and not at.tabs
    assert "dev_key" not in at.session_state


def test_an_unreachable_api_says_so(ui_env: UiEnv):
    context.use(ui_env.settings, dataclasses.replace(ui_config(ui_env.settings),
                                                     api_url="http://127.0.0.1:9"))
    try:
        at = unlock(page_app("dev").run(), ui_env.key)
        assert any("API not reachable" in e.value for e in at.error)
        assert not at.dataframe
    finally:
        context._injected = None


def test_with_the_admin_key_runs_and_quarantined_rows_are_shown(dev: UiEnv):
    at = unlock(page_app("dev").run(), dev.key)
    assert not at.error, [e.value for e in at.error]
    assert [t.label for t in at.tabs] == ["Sync", "Runs", "Allow list"]
    runs = at.dataframe[0].value
    assert set(runs["id"]) >= set(dev.runs)
    # the newest run is shown by default; select the first one (it has the bad row)
    first = runs.index[runs["id"] == dev.runs[0]][0]
    at.session_state["dev_runs"] = {"selection": {"rows": [int(first)], "columns": []}}
    at.run()
    md = " ".join(m.value for m in at.markdown)
    assert f"**Run {dev.runs[0]}**" in md and "1 quarantined row(s)" in md
    quarantined = at.dataframe[1].value
    assert "MCC '45' is not 3 digits" in " ".join(quarantined["reason"].astype(str))


def test_the_allow_list_is_edited_through_the_dev_api(dev: UiEnv, api_url: str):
    api = DevApi(api_url, dev.key)
    api.put_allow_list([{"cidr": "10.1.0.0/16", "role": "user", "note": "lab"}])
    at = unlock(page_app("dev").run(), dev.key)
    editor = at.get("data_editor")[0]
    assert editor.value.to_dict("records") == [{"cidr": "10.1.0.0/16", "role": "user",
                                                 "note": "lab"}]
    with pytest.raises(DevApiError, match="not a valid CIDR"):
        api.put_allow_list([{"cidr": "10.1.2.3/8", "role": "user"}])
    api.put_allow_list([])
    assert api.allow_list()["entries"] == []


def test_a_sync_is_started_and_followed_until_it_ends(dev: UiEnv, api_url: str):
    at = unlock(page_app("dev", timeout=60).run(), dev.key)
    next(b for b in at.button if b.label == "Run sync now").click().run()
    assert not at.error, [e.value for e in at.error]
    run_id = int(at.session_state["dev_follow_run"])
    assert run_id > max(dev.runs)
    api = DevApi(api_url, dev.key)
    deadline = time.monotonic() + 60
    while api.run(run_id, errors_limit=0)["running"] and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    at.run()
    assert any(f"Run {run_id} succeeded" in s.value for s in at.success), \
        [m.value for m in at.markdown]
    assert at.session_state["dev_follow_done"] is True


def test_the_dev_pages_calls_are_audited_as_the_person_via_the_explorer(dev: UiEnv):
    """Issue 11: the Dev page relays the browser's address (here a browser on this machine,
    127.0.0.1) and the audit row says the call came through the explorer."""
    from ledger.db import connect
    with connect(dev.settings, autocommit=True) as conn:
        top = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()
        head = top[0] if top else 0
    at = unlock(page_app("dev").run(), dev.key)
    assert not at.error, [e.value for e in at.error]
    with connect(dev.settings, autocommit=True) as conn:
        rows = conn.execute("SELECT client, path, status, detail FROM audit_log WHERE seq > %s",
                            (head,)).fetchall()
    assert rows and all(r[0] == "127.0.0.1" and (r[3] or "").startswith("via explorer")
                        for r in rows), rows


def test_an_empty_allow_list_still_has_its_columns_and_an_add_row(dev: UiEnv, api_url: str):
    """Issue 12 §2: with an empty allow list the editor had no columns and no add button, so
    the first entry could not be added on the Dev page."""
    DevApi(api_url, dev.key).put_allow_list([])
    at = unlock(page_app("dev").run(), dev.key)
    assert not at.exception and not at.error, [e.value for e in at.error]
    editor = at.data_editor[0]
    assert list(editor.value.columns) == ["cidr", "role", "note"] and editor.value.empty
    assert editor.editing_mode == "dynamic"  # the grid's "add row" button
    assert any("allow list is empty" in i.value for i in at.info)
    # the first entry, added in the editor (as the grid's + does) and saved
    at.session_state["dev_allow_editor"] = {
        "edited_rows": {}, "deleted_rows": [],
        "added_rows": [{"cidr": "10.20.0.0/16", "role": "user", "note": "first"}]}
    next(b for b in at.button if b.label == "Save allow list").click().run()
    assert not at.error, [e.value for e in at.error]
    assert any("Saved: 1 entries" in s.value for s in at.success)
    api = DevApi(api_url, dev.key)
    assert [(e["cidr"], e["role"], e.get("note")) for e in api.allow_list()["entries"]] == [
        ("10.20.0.0/16", "user", "first")]
    api.put_allow_list([])


def test_run_times_are_shown_in_the_configured_zone(ui_env: UiEnv, api_url: str):
    """Issue 12 §2: one time zone everywhere, labelled (the runs grid showed raw UTC text)."""
    from ui import timefmt
    context.use(ui_env.settings, dataclasses.replace(ui_config(ui_env.settings),
                                                     api_url=api_url, timezone="Asia/Seoul"))
    try:
        at = unlock(page_app("dev").run(), ui_env.key)
        runs = at.dataframe[0].value
        raw = {r["id"]: r for r in DevApi(api_url, ui_env.key).runs(50)}
        for row in runs.to_dict("records"):
            assert row["started_at"] == timefmt.fmt(raw[row["id"]]["started_at"], "Asia/Seoul")
        assert any("Times in Asia/Seoul (UTC+09:00)" in c.value for c in at.caption)
    finally:
        context._injected = None
