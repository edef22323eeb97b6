"""The sync run against a real PostgreSQL: C/U/D, idempotence, modes, precedence, history."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmw.errors import SchemaBehind, SyncFailed
from ledger.db import connect
from ledger.refdata import load_mcc_mnc, set_aliases
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import changes, csv_source, features, run_errors, write_csv

ROWS = [
    ("volte", "VoLTE", "450", "05", "enabled", "on", "kim", "2026-11-01T09:00:00+09:00"),
    ("volte", "VoLTE", "310", "410", "disabled", "", "lee", "2026-11-01"),
    ("vonr", "VoNR", "450", "05", "testing", "v2", "park", ""),
]


def sync(s, only=None, dry_run=False):
    return run_sync(s, plan_sync(s, only, trigger="test", dry_run=dry_run))


@pytest.fixture
def one_source(make_settings, tmp_path: Path):
    src = write_csv(tmp_path / "a.csv", ROWS)
    s = make_settings(csv_source("a", src))
    conn = connect(s, autocommit=True)
    load_mcc_mnc(conn)
    yield s, src, conn
    conn.close()


def test_first_sync_creates_each_row_with_enrichment_and_history(one_source):
    s, _, conn = one_source
    r = sync(s)
    assert r.status == "succeeded"
    assert (r.counts["created"], r.counts["updated"], r.counts["deleted"]) == (3, 0, 0)
    f = features(conn)
    kr = f[("volte", "VoLTE", "450", "05")]
    assert kr["country_code"] == "KR" and kr["region"] == "Asia"
    assert "SK Telecom" in kr["operator"]
    assert kr["status"] == "enabled" and kr["value"] == "on" and kr["source"] == "a"
    assert kr["source_updated_at"].isoformat() == "2026-11-01T00:00:00+00:00"
    assert f[("volte", "VoLTE", "310", "410")]["value"] is None
    assert f[("volte", "VoLTE", "310", "410")]["country_code"] == "US"
    ch = changes(conn, r.run_id)
    assert sorted(c["op"] for c in ch) == ["C", "C", "C"]
    assert all(c["before_json"] is None and c["after_json"]["first_run_id"] == r.run_id for c in ch)


def test_resync_of_same_extract_records_no_changes(one_source):
    s, _, conn = one_source
    sync(s)
    before = conn.execute("SELECT count(*) FROM changes").fetchone()
    r2 = sync(s)
    assert r2.status == "succeeded"
    assert (r2.counts["created"], r2.counts["updated"], r2.counts["deleted"]) == (0, 0, 0)
    assert r2.counts["unchanged"] == 3
    assert conn.execute("SELECT count(*) FROM changes").fetchone() == before


def test_changed_value_records_update_with_before_after_and_changed_fields(one_source):
    s, src, conn = one_source
    r1 = sync(s)
    rows = [list(r) for r in ROWS]
    rows[0][4] = "disabled"
    write_csv(src, rows)
    r2 = sync(s)
    assert (r2.counts["created"], r2.counts["updated"], r2.counts["deleted"]) == (0, 1, 0)
    (u,) = changes(conn, r2.run_id)
    assert u["op"] == "U" and u["changed_fields"] == ["status"]
    assert u["before_json"]["status"] == "enabled" and u["after_json"]["status"] == "disabled"
    row = features(conn)[("volte", "VoLTE", "450", "05")]
    assert (row["first_run_id"], row["last_run_id"]) == (r1.run_id, r2.run_id)


@pytest.mark.parametrize(("mode", "deleted"), [("full", 1), ("incremental", 0)])
def test_row_missing_from_source_is_deleted_only_in_full_mode(make_settings, tmp_path, mode, deleted):
    src = write_csv(tmp_path / "a.csv", ROWS)
    s = make_settings(csv_source("a", src, mode=mode))
    sync(s)
    write_csv(src, ROWS[1:])
    r = sync(s)
    assert r.counts["deleted"] == deleted
    with connect(s) as conn:
        assert len(features(conn)) == 3 - deleted
        ops = [c["op"] for c in changes(conn, r.run_id)]
        assert ops == ["D"] * deleted
        if deleted:
            (d,) = changes(conn, r.run_id)
            assert d["before_json"]["feature_name"] == "VoLTE" and d["after_json"] is None


def test_name_map_aliases_match_case_and_whitespace_insensitively(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", [
        ("VoLTE", "Vo LTE", "450", "05", "  ON ", "", "", ""),
        ("volte", "vo  lte", "450", "08", "Enabled", "", "", ""),
    ])
    s = make_settings(csv_source("a", src))
    with connect(s, autocommit=True) as conn:
        set_aliases(conn, "status", {"on": "enabled", "ENABLED": "enabled"})
        set_aliases(conn, "feature_name", {"vo lte": "VoLTE"})
        set_aliases(conn, "feature_group", {"VOLTE": "volte"})
        sync(s)
        f = features(conn)
    assert set(f) == {("volte", "VoLTE", "450", "05"), ("volte", "VoLTE", "450", "08")}
    assert {r["status"] for r in f.values()} == {"enabled"}


def test_mcc_mnc_entries_apply_only_inside_their_validity_window(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", [("volte", "VoLTE", "999", "01", "on", "", "", ""),
                                          ("volte", "VoLTE", "999", "02", "on", "", "", "")])
    override = tmp_path / "mm.csv"
    override.write_text(
        "mcc,mnc,country,country_code,operator,brand,valid_from,valid_to\n"
        "999,01,Korea,KR,Past Telco,P,2000-01-01,2001-01-01\n"
        "999,01,Korea,KR,Current Telco,C,2001-01-01,\n"
        "999,02,Korea,KR,Future Telco,F,2999-01-01,\n", encoding="utf-8")
    s = make_settings(csv_source("a", src))
    with connect(s, autocommit=True) as conn:
        load_mcc_mnc(conn, override)
        sync(s)
        f = features(conn)
    assert f[("volte", "VoLTE", "999", "01")]["operator"] == "Current Telco"
    assert f[("volte", "VoLTE", "999", "01")]["region"] == "Asia"
    assert f[("volte", "VoLTE", "999", "02")]["operator"] is None


def test_identity_in_two_sources_first_listed_wins_and_conflict_is_recorded(make_settings, tmp_path):
    a = write_csv(tmp_path / "a.csv", [ROWS[0]])
    b_row = list(ROWS[0])
    b_row[4] = "disabled"
    b = write_csv(tmp_path / "b.csv", [b_row, ROWS[2]])
    s = make_settings(csv_source("a", a) + csv_source("b", b))
    r = sync(s)
    assert r.status == "partial" and r.counts["conflicts"] == 1 and r.counts["created"] == 2
    with connect(s) as conn:
        assert features(conn)[("volte", "VoLTE", "450", "05")]["status"] == "enabled"
        (e,) = run_errors(conn, r.run_id)
    assert (e["source"], e["row_no"], e["kind"]) == ("b", 2, "conflict")
    assert "source 'a' (row 2)" in e["reason"] and e["raw"]["Status"] == "disabled"


def test_syncing_a_later_source_alone_does_not_take_rows_from_an_earlier_one(make_settings, tmp_path):
    a = write_csv(tmp_path / "a.csv", [ROWS[0]])
    s = make_settings(csv_source("a", a) + csv_source("b", write_csv(tmp_path / "b.csv", [])))
    sync(s)
    b_row = list(ROWS[0])
    b_row[4] = "disabled"
    write_csv(tmp_path / "b.csv", [b_row])
    r = sync(s, only=["b"])
    assert r.counts["updated"] == 0 and r.counts["conflicts"] == 1
    with connect(s) as conn:
        assert features(conn)[("volte", "VoLTE", "450", "05")]["source"] == "a"


def test_dry_run_reports_counts_and_changes_nothing(one_source):
    s, _, conn = one_source
    r = sync(s, dry_run=True)
    assert r.dry_run and r.counts["created"] == 3
    assert conn.execute("SELECT count(*) FROM features").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_replaying_changes_in_order_reproduces_features_exactly(make_settings, tmp_path):
    src = write_csv(tmp_path / "a.csv", ROWS)
    s = make_settings(csv_source("a", src))
    sync(s)
    rows = [list(r) for r in ROWS]
    rows[1][4] = "enabled"
    write_csv(src, rows[1:] + [["rcs", "Chat", "450", "08", "on", "", "", ""]])
    sync(s)
    write_csv(src, [rows[1], ["rcs", "Chat", "450", "08", "off", "x", "", ""], ROWS[0]])
    sync(s)
    with connect(s) as conn:
        conn.execute("CREATE TEMP TABLE replay (LIKE features)")
        for op, ident, after in conn.execute(
                "SELECT op, identity_hash, after_json FROM changes ORDER BY id").fetchall():
            exists = conn.execute("SELECT count(*) FROM replay WHERE identity_hash = %s",
                                  (ident,)).fetchone()
            assert exists == ((0,) if op == "C" else (1,)), f"{op} on {ident}"
            conn.execute("DELETE FROM replay WHERE identity_hash = %s", (ident,))
            if op != "D":
                conn.execute("INSERT INTO replay SELECT * FROM jsonb_populate_record("
                             "NULL::replay, %s::jsonb)", (__import__("json").dumps(after),))
        diff = conn.execute(
            "SELECT count(*) FROM ((TABLE features EXCEPT TABLE replay) "
            "UNION ALL (TABLE replay EXCEPT TABLE features)) d").fetchone()
        n = conn.execute("SELECT count(*) FROM features").fetchone()
    assert diff == (0,) and n == (3,)


def test_commands_refuse_a_schema_that_is_behind(make_settings, tmp_path):
    s = make_settings(csv_source("a", write_csv(tmp_path / "a.csv", ROWS)), migrate=False)
    with pytest.raises(SchemaBehind, match="fmw db upgrade"):
        sync(s)


def test_no_sources_configured_is_a_clear_error(make_settings):
    s = make_settings("")
    with pytest.raises(Exception, match="no sources are configured"):
        sync(s)


def test_failed_run_is_recorded_with_reason(make_settings, tmp_path):
    s = make_settings(csv_source("a", tmp_path / "missing.csv"))
    with pytest.raises(SyncFailed, match="file not found") as info:
        sync(s)
    with connect(s) as conn:
        row = conn.execute("SELECT status, error_summary FROM runs WHERE id = %s",
                           (info.value.run_id,)).fetchone()
        daily = conn.execute("SELECT runs, failed_runs FROM daily_counts").fetchone()
    assert row[0] == "failed" and "missing.csv" in row[1]
    assert daily == (1, 1)
