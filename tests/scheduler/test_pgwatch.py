"""The service host's watch on the embedded PostgreSQL: a killed server comes back by itself and
the admins get one alert when it went down and one when it is back (a real embedded server, a
real webhook receiver on loopback)."""

from __future__ import annotations

import time

import psutil
import pytest

from fmw.errors import DatabaseUnavailable
from fmw.settings import Settings
from ledger import db
from scheduler.pgwatch import EmbeddedWatch, WatchPolicy, webhook_notify
from tests.scheduler.servers import serve_webhook


def _postmaster(settings: Settings) -> psutil.Process:
    pid = int((settings.pg_dir / "postmaster.pid").read_text().splitlines()[0])
    return psutil.Process(pid)


def _kill(settings: Settings) -> None:
    proc = _postmaster(settings)
    children = proc.children(recursive=True)
    proc.kill()  # SIGKILL / TerminateProcess: a crash, not a clean stop
    psutil.wait_procs([proc, *children], timeout=30)


@pytest.mark.slow
def test_a_killed_embedded_server_is_restarted_and_alerted_once_each_way(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    url = db.database_url(settings)
    try:
        from ledger.schema import upgrade
        upgrade(settings)
        with db.connect(settings, url=url) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
            conn.commit()
        with serve_webhook() as hook:
            watch = EmbeddedWatch(settings, WatchPolicy(interval_s=0.0, first_delay_s=1.0,
                                                        max_delay_s=5.0),
                                  notify=webhook_notify(hook.url, 5))
            assert watch.tick() is True and not hook.bodies  # running: nothing to say
            _kill(settings)
            assert not db.embedded_alive(settings)
            with pytest.raises(DatabaseUnavailable):
                db.connect(settings, url=url).close()
            # Restarted, usually in the first tick. After a crash PostgreSQL first syncs its
            # whole data folder; on Windows a file in it held open elsewhere (a sharing
            # violation on its log) makes it retry for up to 30 s, so a start can time out and
            # the watch tries again with back-off (seen in the Windows lane).
            deadline = time.monotonic() + 150
            while (up := watch.tick()) is not True and time.monotonic() < deadline:
                time.sleep(0.5)
            assert up is True and watch.down_since is None
            assert watch.restarts <= 1 and watch.failures == 0
            assert [b["event"] for b in hook.bodies] == ["ledger_unreachable", "ledger_reachable"]
            assert "embedded PostgreSQL" in hook.bodies[0]["text"]
            assert watch.tick() is True and len(hook.bodies) == 2  # no repeat while it runs
        with db.connect(settings) as conn:  # the committed data survived the crash
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
            # issue 13: the outage is an incident with its start and end
            rows = conn.execute("SELECT kind, closed_at - opened_at FROM incidents").fetchall()
            assert [r[0] for r in rows] == ["ledger"] and rows[0][1].total_seconds() >= 0
    finally:
        db.stop_embedded(settings)


def test_a_server_that_cannot_start_is_retried_with_back_off_not_hammered(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    settings.pg_dir.write_text("a file where the data folder should be", newline="\n")
    now = [1000.0]
    sent: list[dict] = []
    watch = EmbeddedWatch(settings, WatchPolicy(interval_s=10, first_delay_s=5, max_delay_s=20),
                          notify=sent.append, clock=lambda: now[0])
    assert watch.tick() is False and watch.failures == 1
    assert [b["event"] for b in sent] == ["ledger_unreachable"]
    assert watch.tick() is None  # not due yet: 5 s back-off
    now[0] += 5
    assert watch.tick() is False and watch.failures == 2
    now[0] += 9.9
    assert watch.tick() is None  # 10 s back-off now
    now[0] += 0.1
    assert watch.tick() is False and watch.failures == 3
    now[0] += 20
    assert watch.tick() is False and watch.failures == 4  # capped at 20 s
    assert len(sent) == 1  # one alert per outage, not one per attempt


def test_an_external_database_is_not_watched(tmp_path, pg_url):
    settings = Settings(data_dir=tmp_path, database_url=pg_url)
    watch = EmbeddedWatch(settings, notify=lambda b: pytest.fail("no alert expected"))
    assert watch.tick() is None and not watch.enabled
