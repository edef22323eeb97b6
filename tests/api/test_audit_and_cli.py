"""The audit log's hash chain (written by real dev calls) and the API's CLI commands."""

from __future__ import annotations

import argparse
import json

import pytest

from fmw.cli_api import register
from ledger.audit import verify_chain
from ledger.db import connect
from tests.api.conftest import client


def cli(settings, *argv: str) -> int:
    p = argparse.ArgumentParser(prog="fmw")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(list(argv))
    return int(args.func(args, settings))


@pytest.fixture
def audited(server, env):
    """A fresh chain of a few dev calls of different outcomes; a connection to the ledger."""
    with connect(env.settings, autocommit=True) as conn:
        conn.execute("TRUNCATE audit_log, audit_head")
    c = client(key=env.key)
    c.get(f"{server.url}/api/dev/runs?limit=1")
    c.get(f"{server.url}/api/dev/runs/999999")
    client().get(f"{server.url}/api/dev/health")  # no key: 401, still audited
    c.get(f"{server.url}/api/dev/changes?op=C&limit=2")
    client("127.0.0.2", env.key).get(f"{server.url}/api/dev/runs")  # refused address: 403
    client().get(f"{server.url}/api/v1/esim")  # v1 is not audited
    conn = connect(env.settings, autocommit=True)
    yield conn
    conn.close()


def test_every_dev_call_is_recorded_with_its_outcome(audited):
    rows = audited.execute("SELECT seq, client, method, path, query, status, key_id "
                           "FROM audit_log ORDER BY seq").fetchall()
    got = [(r[1], r[3], r[4], r[5], r[6] is not None) for r in rows]
    assert got == [
        ("127.0.0.1", "/api/dev/runs", "limit=1", 200, True),
        ("127.0.0.1", "/api/dev/runs/999999", "", 404, True),
        ("127.0.0.1", "/api/dev/health", "", 401, False),
        ("127.0.0.1", "/api/dev/changes", "op=C&limit=2", 200, True),
        ("127.0.0.2", "/api/dev/runs", "", 403, False),
    ]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert not any("/api/v1/" in r[3] for r in rows)
    v = verify_chain(audited)
    assert v.ok and v.rows == len(rows) and v.head_seq == len(rows)


def test_audit_verify_passes_on_an_intact_chain(audited, env, capsys):
    assert cli(env.settings, "audit", "verify") == 0
    assert "intact" in capsys.readouterr().out


@pytest.mark.parametrize(("tamper", "expect"), [
    ("UPDATE audit_log SET status = 200 WHERE seq = 3", "row 3: content does not match"),
    ("UPDATE audit_log SET client = '10.0.0.1' WHERE seq = 2", "row 2: content does not match"),
    ("DELETE FROM audit_log WHERE seq = 2", "rows 2..2 are missing"),
    ("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)", "the chain ends at"),
    ("UPDATE audit_log SET prev_hash = repeat('0', 64) WHERE seq = 4", "row 4: does not link"),
])
def test_audit_verify_detects_a_tampered_or_deleted_row(audited, env, capsys, tamper, expect):
    audited.execute(tamper)
    v = verify_chain(audited)
    assert not v.ok and any(expect in p for p in v.problems), v.problems
    assert cli(env.settings, "audit", "verify", "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and any(expect in p for p in out["problems"])


def test_recomputing_one_hash_is_not_enough_to_hide_an_edit(audited):
    """Editing a row and fixing its own hash still breaks the link from the next row."""
    from ledger.audit import AuditEntry, row_hash
    r = audited.execute("SELECT seq, at, client, key_id, method, path, query, status, detail, "
                        "prev_hash FROM audit_log WHERE seq = 2").fetchone()
    entry = AuditEntry(client=r[2], key_id=r[3], method=r[4], path=r[5], query=r[6],
                       status=500, detail=r[8])
    audited.execute("UPDATE audit_log SET status = 500, hash = %s WHERE seq = 2",
                    (row_hash(2, r[1], entry, r[9]),))
    v = verify_chain(audited)
    assert not v.ok and any("row 3: does not link" in p for p in v.problems)


def test_apikey_create_list_revoke(server, env, capsys):
    assert cli(env.settings, "apikey", "create", "ci-bot", "--json") == 0
    made = json.loads(capsys.readouterr().out)
    assert made["key"].startswith("fmw_") and made["name"] == "ci-bot"
    assert client(key=made["key"]).get(f"{server.url}/api/dev/runs").status_code == 200
    assert cli(env.settings, "apikey", "list") == 0
    listed = capsys.readouterr().out
    assert "ci-bot" in listed and made["key"] not in listed
    assert cli(env.settings, "apikey", "revoke", made["prefix"]) == 0
    assert "revoked API key" in capsys.readouterr().out
    assert client(key=made["key"]).get(f"{server.url}/api/dev/runs").status_code == 401
    assert cli(env.settings, "apikey", "list", "--json") == 0
    keys = {k["name"]: k for k in json.loads(capsys.readouterr().out)}
    assert keys["ci-bot"]["revoked_at"] is not None


def test_revoking_an_unknown_key_is_an_error(env):
    from fmw.errors import FmwError
    with pytest.raises(FmwError, match="no active API key"):
        cli(env.settings, "apikey", "revoke", "deadbeef")


def test_revoke_takes_an_all_digit_prefix_as_a_prefix(env):
    """Regression: prefix '40779457' was taken for key id 40779457 and nothing was revoked."""
    from ledger.access import create_key, list_keys, revoke_key
    with connect(env.settings, autocommit=True) as conn:
        made = create_key(conn, "digits")
        conn.execute("UPDATE api_keys SET prefix = '40779457' WHERE id = %s", (made.key.id,))
        assert revoke_key(conn, "40779457").id == made.key.id
        other = create_key(conn, "by-id")
        assert revoke_key(conn, str(other.key.id)).name == "by-id"
        assert {k.name for k in list_keys(conn) if k.revoked_at} >= {"digits", "by-id"}


def _rewrite_from(conn, first_seq: int) -> None:
    """What someone with write access to the database can do: change a row and recompute
    every hash after it and the head, so the chain alone still checks out."""
    from ledger.audit import AuditEntry, row_hash
    rows = conn.execute("SELECT seq, at, client, key_id, method, path, query, status, detail, "
                        "prev_hash FROM audit_log WHERE seq >= %s ORDER BY seq",
                        (first_seq,)).fetchall()
    prev = rows[0][9]
    for seq, at, who, key_id, method, path, query, status, detail, _ in rows:
        if seq == first_seq:
            who = "10.66.6.6"  # the forged fact
        e = AuditEntry(client=who, method=method, path=path, query=query, status=status,
                       key_id=key_id, detail=detail)
        h = row_hash(seq, at, e, prev)
        conn.execute("UPDATE audit_log SET client = %s, prev_hash = %s, hash = %s "
                     "WHERE seq = %s", (who, prev, h, seq))
        prev = h
    conn.execute("UPDATE audit_head SET hash = %s WHERE id = 1", (prev,))


def test_a_rewritten_chain_is_caught_by_an_anchor_outside_the_database(audited, env, capsys):
    """Issue 11: the unkeyed chain can be rewritten by a database admin; an anchor of its
    head kept outside PostgreSQL (backups, `fmw audit anchor`) makes that detectable."""
    from ledger.audit import anchors_path
    anchors_path(env.settings.data_dir).unlink(missing_ok=True)
    assert cli(env.settings, "audit", "anchor") == 0
    _rewrite_from(audited, 2)
    assert verify_chain(audited).ok  # the chain alone is fooled: that is the known limit
    capsys.readouterr()
    assert cli(env.settings, "audit", "verify", "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["anchors_checked"] == 1
    assert any("was rewritten" in p for p in out["problems"]), out


def test_rows_cut_off_after_an_anchor_are_caught(audited, env, capsys):
    from ledger.audit import anchors_path
    anchors_path(env.settings.data_dir).unlink(missing_ok=True)
    assert cli(env.settings, "audit", "anchor") == 0
    n = audited.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    h = audited.execute("SELECT hash FROM audit_log WHERE seq = %s", (n - 2,)).fetchone()[0]
    audited.execute("DELETE FROM audit_log WHERE seq > %s", (n - 2,))
    audited.execute("UPDATE audit_head SET seq = %s, hash = %s", (n - 2, h))
    assert verify_chain(audited).ok
    assert cli(env.settings, "audit", "verify") == 1
    assert f"row {n}" in capsys.readouterr().err


def test_an_intact_chain_matches_its_anchors(audited, env, server, capsys):
    from ledger.audit import anchors_path
    anchors_path(env.settings.data_dir).unlink(missing_ok=True)
    assert cli(env.settings, "audit", "anchor") == 0
    client(key=env.key).get(f"{server.url}/api/dev/runs")  # the chain grows after the anchor: still fine
    assert cli(env.settings, "audit", "verify") == 0
    assert "1 anchor(s) outside the database match" in capsys.readouterr().out
