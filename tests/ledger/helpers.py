"""Small builders for sync tests: CSV sources and their TOML."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg

HEADER = ("Group", "Feature", "MCC", "MNC", "Status", "Value", "Owner", "Updated")


def write_csv(path: Path, rows: Iterable[Sequence[Any]], header: Sequence[str] = HEADER,
              encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def csv_source(name: str, path: Path, mode: str = "full", extra: str = "") -> str:
    return f"""
[[sources]]
name = "{name}"
kind = "csv"
path = "{path.as_posix()}"
mode = "{mode}"
{extra}
[sources.columns]
feature_group = "Group"
feature_name = "Feature"
mcc = "MCC"
mnc = "MNC"
status = "Status"
value = "Value"
owner = "Owner"
source_updated_at = "Updated"
"""


def features(conn: psycopg.Connection) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Current features keyed by (group, name, mcc, mnc)."""
    cur = conn.execute("SELECT * FROM features")
    names = [d.name for d in cur.description or []]
    out = {}
    for row in cur.fetchall():
        d = dict(zip(names, row, strict=True))
        out[(d["feature_group"], d["feature_name"], d["mcc"], d["mnc"])] = d
    return out


def changes(conn: psycopg.Connection, run_id: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM changes" + (" WHERE run_id = %s" if run_id else "") + " ORDER BY id"
    cur = conn.execute(sql, (run_id,) if run_id else ())
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def run_errors(conn: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT source, row_no, kind, reason, raw FROM run_errors "
                       "WHERE run_id = %s ORDER BY id", (run_id,))
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def ledger_fingerprint(conn: psycopg.Connection) -> tuple[Any, ...]:
    """Row counts and content hashes of the ledger tables a failed run must not touch."""
    out = []
    for table, order in (("features", "identity_hash"), ("changes", "id")):
        row = conn.execute(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) "
            f"FROM {table} t"
        ).fetchone()
        out.append(row)
    return tuple(out)


def fresh_instance(pg_url: str, root: Path, rows: Iterable[Sequence[Any]], *,
                   source: str = "a", key_name: str = "tests") -> tuple[Any, str, Path]:
    """A new FMW instance in its own schema: a CSV source, migrated, MCC/MNC loaded, an admin
    API key. Returns (settings, key secret, source path); nothing is synced yet."""
    import uuid

    from fmw.settings import load_settings
    from ledger.access import create_key
    from ledger.db import connect
    from ledger.refdata import load_mcc_mnc
    from ledger.schema import upgrade
    src = write_csv(root / "extract.csv", rows)
    cfg = root / "fmw.toml"
    cfg.write_text(csv_source(source, src), encoding="utf-8")
    s = load_settings(cfg, root / "data", environ={
        "FMW_DATABASE_URL": pg_url, "FMW_SCHEMA": f"t_{uuid.uuid4().hex[:12]}",
        "FMW_SNAPSHOTS_DIR": str(root / "snapshots")})
    upgrade(s)
    with connect(s, autocommit=True) as conn:
        load_mcc_mnc(conn)
        key = create_key(conn, key_name).secret
    return s, key, src
