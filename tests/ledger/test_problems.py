"""Bad rows as open items (issue 13): the same bad rows re-delivered every day are one open
problem each, not new errors every run; a row no longer delivered is fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger import problems
from ledger.db import connect
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import csv_source, write_csv


def sync(s, sources=None):
    return run_sync(s, plan_sync(s, sources, trigger="test"))

GOOD = [("volte", f"F{i}", "450", "05", "on", "", "", "") for i in range(40)]
BAD = [("volte", "", "450", "05", "on", "", "", ""),  # no feature name
       ("volte", "Bad MCC", "45", "05", "on", "", "", "")]


def _summary(s):
    with connect(s, autocommit=True) as conn:
        return problems.summary(conn, datetime.now(UTC) - timedelta(hours=1))


def test_the_same_bad_rows_every_day_stay_the_same_open_problems(make_settings, tmp_path):
    src = tmp_path / "a.csv"
    write_csv(src, GOOD + BAD)
    s = make_settings(csv_source("a", src))
    for _ in range(3):  # three days of the same delivery
        assert sync(s).status == "partial"
    got = _summary(s)
    assert got.open == 2 and got.new_since == 2 and got.fixed_since == 0
    assert [p["reason"] for p in got.oldest] and all(p["first_run_id"] == 1 for p in got.oldest)
    assert {p["last_run_id"] for p in got.oldest} == {3}


def test_a_bad_row_no_longer_delivered_is_fixed_and_a_new_one_opens(make_settings, tmp_path):
    src = tmp_path / "a.csv"
    write_csv(src, GOOD + BAD)
    s = make_settings(csv_source("a", src))
    sync(s)
    write_csv(src, GOOD + [BAD[0], ("volte", "Other", "4500", "05", "on", "", "", "")])
    sync(s)
    got = _summary(s)
    assert got.open == 2 and got.fixed_since == 1 and got.new_since == 3
    with connect(s, autocommit=True) as conn:
        fixed = conn.execute("SELECT reason, fixed_run_id FROM data_problems WHERE fixed_at "
                             "IS NOT NULL").fetchall()
    assert len(fixed) == 1 and "45" in fixed[0][0] and fixed[0][1] == 2


def test_a_run_of_another_source_does_not_close_these_problems(make_settings, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(a, GOOD + BAD)
    write_csv(b, [("vonr", "X", "450", "08", "on", "", "", "")])
    s = make_settings(csv_source("a", a) + csv_source("b", b))
    sync(s)
    sync(s, sources=["b"])
    assert _summary(s).open == 2
