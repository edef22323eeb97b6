"""A real ledger with two real syncs and two published snapshots, for the explorer's tests.

Built once per test module and small enough to check by hand: 3 groups, 66 features on 6
real MCC/MNC pairs (a country with commas from the shipped list),
statuses enabled/disabled/testing, one bad row (quarantined). The second sync ("day 2")
updates 4 rows, deletes 2 and adds 1, so History and the version diff have something to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from fmw.settings import Settings
from lake.publish import publish_snapshot
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import fresh_instance, write_csv
from tests.ui.browser import browser_page, shots, stack  # noqa: F401 - fixtures for test_browser*
from ui import context

GROUPS = {"volte": 30, "vonr": 24, "rcs": 12}
PAIRS = [("450", "05"), ("450", "08"), ("450", "06"), ("310", "410"), ("262", "01"),
         ("658", "01")]  # the last: "Saint Helena, Ascension and Tristan da Cunha"
TOTAL = sum(GROUPS.values())


def day1_rows() -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for group, n in GROUPS.items():
        for i in range(n):
            mcc, mnc = PAIRS[i % len(PAIRS)]
            status = ("disabled", "enabled", "enabled", "testing")[i % 4]
            name = f"Feature {i // len(PAIRS):02d}" + (" 한국어" if i % 7 == 0 else "")
            rows.append((group, name, mcc, mnc, status, str(i % 3), "kim", "2026-11-01"))
    rows.append(("volte", "Broken", "45", "05", "enabled", "", "kim", "2026-11-01"))  # bad MCC
    return rows


def day2_rows() -> list[tuple[str, ...]]:
    rows = [r for r in day1_rows() if r[2] != "45"]
    changed = []
    for r in rows:
        if r[0] == "rcs" and r[1] == "Feature 00" and r[2] in ("450", "310"):
            r = (*r[:4], "enabled" if r[4] != "enabled" else "disabled", *r[5:])
        if r[0] == "vonr" and r[1] == "Feature 03 한국어":
            r = (*r[:5], "9", *r[6:])
        changed.append(r)
    gone = {("volte", "Feature 04", "310", "410"), ("volte", "Feature 04", "658", "01")}
    kept = [r for r in changed if (r[0], r[1], r[2], r[3]) not in gone]
    kept.append(("rcs", "Chatbot", "450", "05", "testing", "1", "lee", "2026-11-02"))
    return kept


@dataclass
class UiEnv:
    settings: Settings
    key: str
    versions: tuple[int, int]
    runs: tuple[int, int]
    root: Path


def build(pg_url: str, root: Path) -> UiEnv:
    s, key, src = fresh_instance(pg_url, root, day1_rows(), source="ops", key_name="ui-tests")
    r1 = run_sync(s, plan_sync(s, trigger="test"))
    v1 = publish_snapshot(s, r1.run_id).version
    write_csv(src, day2_rows())
    r2 = run_sync(s, plan_sync(s, trigger="test"))
    v2 = publish_snapshot(s, r2.run_id).version
    return UiEnv(s, key, (v1, v2), (r1.run_id, r2.run_id), root)


@pytest.fixture(scope="module")
def ui_env(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiEnv]:
    env = build(pg_url, tmp_path_factory.mktemp("ui"))
    yield env
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{env.settings.schema}" CASCADE')


@pytest.fixture
def use_env(ui_env: UiEnv) -> Iterator[UiEnv]:
    """The explorer in this process reads `ui_env` (AppTest runs pages in-process)."""
    context.use(ui_env.settings)
    yield ui_env
    context._injected = None


def page_app(name: str, timeout: float = 30) -> AppTest:
    """An AppTest running one page of the explorer (callable pages cannot be switched to)."""
    return AppTest.from_string(f"from ui.{name} import page\npage()\n", default_timeout=timeout)
