"""A small real ledger, built by real syncs, for the export and snapshot tests (fixture `ledger`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from fmw.settings import Settings
from ledger.db import connect
from ledger.refdata import load_mcc_mnc, set_aliases
from ledger.sync import SyncResult, plan_sync, run_sync
from tests.ledger.helpers import csv_source, write_csv

#: Rows per feature group in the first extract: big enough to span several ADBC batches is not
#: needed here (the writer test covers row groups); small enough to sync in a second.
GROUP_SIZES = {"volte": 700, "vonr": 250, "rcs": 40, "esim": 1}
PAIRS = [("450", "05"), ("450", "08"), ("310", "410"), ("262", "01"), ("440", "10")]


def extract_rows(sizes: dict[str, int], status: str = "enabled") -> list[tuple[str, ...]]:
    """Unique identities, deliberately not in sorted order (the writer must sort)."""
    rows: list[tuple[str, ...]] = []
    for group, n in sizes.items():
        for i in reversed(range(n)):
            mcc, mnc = PAIRS[i % len(PAIRS)]
            rows.append((group, f"Feature {i // len(PAIRS):04d} é" if i % 7 == 0 else
                         f"Feature {i // len(PAIRS):04d}", mcc, mnc, status, str(i % 3),
                         "kim", "2026-11-01"))
    return rows


@dataclass
class Ledger:
    """Settings of a migrated schema with synced data, its snapshots folder and a connection."""

    settings: Settings
    conn: psycopg.Connection
    source: Path

    def sync(self, rows: list[tuple[str, ...]] | None = None) -> SyncResult:
        if rows is not None:
            write_csv(self.source, rows)
        return run_sync(self.settings, plan_sync(self.settings, trigger="test"))


@pytest.fixture
def ledger(make_settings, tmp_path: Path) -> Iterator[Ledger]:
    src = write_csv(tmp_path / "extract.csv", extract_rows(GROUP_SIZES))
    s = make_settings(csv_source("a", src), FMW_SNAPSHOTS_DIR=str(tmp_path / "snapshots"))
    conn = connect(s, autocommit=True)
    load_mcc_mnc(conn)
    set_aliases(conn, "status", {"ON": "enabled", "off": "disabled"})
    led = Ledger(s, conn, src)
    led.sync()
    yield led
    conn.close()
