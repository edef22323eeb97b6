"""Every kind of bad input: quarantined with file, row and reason, or the run fails whole."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fmw.errors import SyncFailed
from ledger.db import connect
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import csv_source, features, ledger_fingerprint, run_errors, write_csv


def good_rows(n: int = 40) -> list[list[str]]:
    return [["volte", f"F{i}", "450", f"{i:02d}", "enabled", "", "", ""] for i in range(n)]


def sync(s):
    return run_sync(s, plan_sync(s, trigger="test"))


@pytest.mark.parametrize(("bad", "reason"), [
    (["volte", "", "450", "05", "on", "", "", ""],
     "missing identity field feature_name (column 'Feature')"),
    (["", "VoLTE", "450", "05", "on", "", "", ""],
     "missing identity field feature_group (column 'Group')"),
    (["volte", "VoLTE", "45", "05", "on", "", "", ""], "MCC '45' is not 3 digits"),
    (["volte", "VoLTE", "45O", "05", "on", "", "", ""], "MCC '45O' is not 3 digits"),
    (["volte", "VoLTE", "450", "1234", "on", "", "", ""], "MNC '1234' is not 2-3 digits"),
    (["volte", "VoLTE", "450", "5", "on", "", "", ""], "MNC '5' is not 2-3 digits"),
    (["volte", "VoLTE", "450", "05", "on", "", "", "yesterday"],
     "source_updated_at 'yesterday' is not a date/time"),
    (["volte", "VoLTE", "450", "05", "on", "", "", "epoch"],
     "source_updated_at 'epoch' is not a date/time"),
    (["volte", "VoLTE", "450", "05", "on", "", "", "2026-02-30"],
     "source_updated_at '2026-02-30' is not a date/time"),
    (["Wi-Fi Calling", "VoWiFi", "450", "05", "on", "", "", ""],
     "feature_group 'Wi-Fi Calling' must be 1-64 letters"),
    (["volte", "Vo\x07LTE", "450", "05", "on", "", "", ""],
     "identity field feature_name contains a control character"),
])
def test_bad_row_is_quarantined_with_row_and_reason_and_the_rest_applies(
        make_settings, tmp_path, bad, reason):
    src = write_csv(tmp_path / "a.csv", good_rows()[:20] + [bad] + good_rows()[20:])
    s = make_settings(csv_source("a", src))
    r = sync(s)
    assert r.status == "partial"
    assert (r.counts["rows_read"], r.counts["rows_bad"], r.counts["created"]) == (41, 1, 40)
    with connect(s) as conn:
        (e,) = run_errors(conn, r.run_id)
        assert len(features(conn)) == 40
    assert (e["source"], e["row_no"], e["kind"]) == ("a", 22, "invalid")
    assert reason in e["reason"]
    assert e["raw"]["Feature"] == (bad[1] or None) and e["raw"]["MCC"] == (bad[2] or None)


def test_conflicting_duplicate_in_one_source_is_quarantined_and_the_stored_row_kept(
        make_settings, tmp_path):
    rows = good_rows()
    src = write_csv(tmp_path / "a.csv", rows)
    s = make_settings(csv_source("a", src))
    sync(s)
    first = [*rows[0][:4], "disabled", "", "", ""]
    second = [*rows[0][:4], "testing", "", "", ""]
    exact_copy = list(rows[1])
    write_csv(src, [first, *rows[1:], second, exact_copy])
    r = sync(s)
    with connect(s) as conn:
        errs = run_errors(conn, r.run_id)
        stored = features(conn)[("volte", "F0", "450", "00")]
    assert r.status == "partial" and r.counts["deleted"] == 0 and r.counts["updated"] == 0
    assert [(e["row_no"], e["kind"]) for e in errs] == [(2, "duplicate"), (42, "duplicate")]
    assert "delivered 2 times by this source with different values (rows 2, 42)" in errs[0]["reason"]
    assert errs[1]["raw"]["Status"] == "testing"
    assert stored["status"] == "enabled"


def _bytes_neither_utf8_nor_cp949() -> bytes:
    return b"Group,Feature,MCC,MNC,Status,Value,Owner,Updated\n" + b"volte,\xff\xfe,450,05,on,,,\n"


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(_bytes_neither_utf8_nor_cp949()), "not valid UTF-8 or CP949"),
    (lambda p: p.write_text("Group,Feature,MCC,MNC,Status\nvolte,V,450,05,on\n"),
     "mapped columns? 'Value'"),
    (lambda p: p.write_text("Group,Feature,MCC,MNC,Status,Value,Owner,Updated\n"
                            "volte,V,450,05,on,,,\nvolte,W,450\n"), "row 3"),
    (lambda p: p.write_bytes(b""), "empty"),
])
def test_unreadable_source_fails_the_run_and_leaves_the_ledger_exactly_as_before(
        make_settings, tmp_path, setup, message):
    good = write_csv(tmp_path / "good.csv", good_rows())
    bad = tmp_path / "bad.csv"
    s = make_settings(csv_source("good", good) + csv_source("bad", bad, mode="incremental"))
    write_csv(bad, [])
    sync(s)
    write_csv(good, good_rows(10))  # would delete 30 rows if anything were applied
    bad.unlink()
    setup(bad)
    with connect(s) as conn:
        before = ledger_fingerprint(conn)
    with pytest.raises(SyncFailed, match=message) as info:
        sync(s)
    with connect(s) as conn:
        assert ledger_fingerprint(conn) == before
        status, summary = conn.execute("SELECT status, error_summary FROM runs WHERE id = %s",
                                       (info.value.run_id,)).fetchone()
        errs = run_errors(conn, info.value.run_id)
    assert status == "failed" and "bad.csv" in summary and re.search(message, summary)
    assert [(e["source"], e["kind"]) for e in errs] == [("bad", "source")]


def test_bad_share_above_the_limit_fails_the_run_and_applies_nothing(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", good_rows(9))
    s = make_settings(csv_source("a", src))
    sync(s)
    rows = good_rows(9)
    rows[0][4] = "disabled"  # an update that must not be applied
    write_csv(src, rows + [["volte", "X", "45", "05", "", "", "", ""]])
    with connect(s) as conn:
        before = ledger_fingerprint(conn)
    with pytest.raises(SyncFailed, match=r"1 of 10 rows \(10.0%\) are bad, above the limit of 5.0%"):
        sync(s)
    with connect(s) as conn:
        assert ledger_fingerprint(conn) == before
        run_id, status = conn.execute("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        assert status == "failed"
        assert [e["row_no"] for e in run_errors(conn, run_id)] == [11]
        assert conn.execute("SELECT failed_runs, errors FROM daily_counts").fetchone() == (1, 1)


def test_bad_share_limit_is_configurable(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", good_rows(9) + [["volte", "X", "45", "05", "", "", "", ""]])
    s = make_settings(csv_source("a", src), FMW_MAX_BAD_SHARE="0.2")
    r = sync(s)
    assert r.status == "partial" and r.counts["created"] == 9


def test_nested_value_in_a_mapped_json_field_is_quarantined_as_wrong_type(make_settings, tmp_path):
    src = tmp_path / "a.json"
    records = [{"g": "volte", "f": f"F{i}", "mcc": 450, "mnc": f"{i:02d}", "status": "on",
                "ticket": {"id": i}} for i in range(30)]
    records[3]["status"] = {"nested": True}
    src.write_text(json.dumps(records), encoding="utf-8")
    s = make_settings(f"""
[[sources]]
name = "j"
kind = "json"
path = "{src.as_posix()}"
[sources.columns]
feature_group = "g"
feature_name = "f"
mcc = "mcc"
mnc = "mnc"
status = "status"
""")
    r = sync(s)
    with connect(s) as conn:
        (e,) = run_errors(conn, r.run_id)
        f = features(conn)
    assert r.status == "partial" and r.counts["created"] == 29
    assert e["row_no"] == 4 and "expected a scalar" in e["reason"]
    assert f[("volte", "F0", "450", "00")]["attrs"] == {"ticket": '{"id":0}'}


def test_cp949_source_keeps_korean_text(make_settings, tmp_path):
    src = write_csv(tmp_path / "kr.csv", [["rcs", "채팅", "450", "05", "사용", "", "김민준 (서울 운영팀)", ""]],
                    encoding="cp949")
    s = make_settings(csv_source("kr", src))
    sync(s)
    with connect(s) as conn:
        row = features(conn)[("rcs", "채팅", "450", "05")]
    assert row["owner"] == "김민준 (서울 운영팀)" and row["status"] == "사용"


def test_missing_config_file_is_a_clear_error(tmp_path: Path):
    from fmw.errors import ConfigError
    from fmw.settings import load_settings
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(("allow_empty", "deleted"), [(False, None), (True, 40)])
def test_full_source_that_suddenly_delivers_nothing_does_not_wipe_its_rows(
        make_settings, tmp_path, allow_empty, deleted):
    src = write_csv(tmp_path / "a.csv", good_rows())
    extra = "allow_empty = true" if allow_empty else ""
    s = make_settings(csv_source("a", src, extra=extra))
    sync(s)
    write_csv(src, [])  # header only: a broken export, or really empty
    if deleted is None:
        with pytest.raises(SyncFailed, match="refusing to delete its 40 stored rows"):
            sync(s)
        with connect(s) as conn:
            assert len(features(conn)) == 40
    else:
        assert sync(s).counts["deleted"] == deleted
