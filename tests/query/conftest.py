"""Snapshots built by hand, exactly per `lake.layout` and `lake.manifest`, for the query tests.

The writer (`lake/`) is built separately, so these tests write version folders themselves with
pyarrow: features hive-partitioned by feature_group (not stored in the files), sorted by
(feature_name, mcc, mnc), zstd; the other tables as part-0.parquet; manifest.json with every
file's sha256 written last; CURRENT.json through `Layout.write_pointer`.

The dataset is small and hand-checked: 10 features in 4 groups (one named "001", which must stay
text), Korean text, commas, quotes, CR/LF and tabs in values, cells that look like formulas, and
nulls. Version 2 changes it: one feature added, one removed, two changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fmw.settings import Settings
from lake.layout import MANIFEST, PARTITION_COLUMN, Layout
from lake.manifest import FORMAT, Manifest, TableInfo, sha256_file
from query import Engine

TS = pa.timestamp("us", tz="UTC")
FEATURE_SCHEMA = pa.schema([
    ("identity_hash", pa.string()), ("row_hash", pa.string()), ("feature_name", pa.string()),
    ("mcc", pa.string()), ("mnc", pa.string()), ("status", pa.string()), ("value", pa.string()),
    ("owner", pa.string()), ("notes", pa.string()), ("source", pa.string()),
    ("source_updated_at", TS), ("region", pa.string()), ("country", pa.string()),
    ("country_code", pa.string()), ("operator", pa.string()), ("brand", pa.string()),
    ("attrs", pa.string()), ("first_run_id", pa.int64()), ("first_seen_at", TS),
    ("last_run_id", pa.int64()), ("last_changed_at", TS),
])
CHANGE_SCHEMA = pa.schema([
    ("id", pa.int64()), ("run_id", pa.int64()), ("identity_hash", pa.string()),
    ("feature_group", pa.string()), ("op", pa.string()), ("before_json", pa.string()),
    ("after_json", pa.string()), ("changed_fields", pa.list_(pa.string())), ("changed_at", TS),
])
RUN_SCHEMA = pa.schema([
    ("id", pa.int64()), ("trigger", pa.string()), ("status", pa.string()),
    ("started_at", TS), ("finished_at", TS), ("day", pa.date32()),
    ("sources", pa.list_(pa.string())), ("rows_read", pa.int64()), ("created", pa.int64()),
    ("updated", pa.int64()), ("deleted", pa.int64()), ("error_summary", pa.string()),
])
DAILY_SCHEMA = pa.schema([
    ("day", pa.date32()), ("created", pa.int64()), ("updated", pa.int64()),
    ("deleted", pa.int64()), ("errors", pa.int64()), ("runs", pa.int64()),
    ("failed_runs", pa.int64()),
])
NAME_MAP_SCHEMA = pa.schema([
    ("kind", pa.string()), ("alias_key", pa.string()), ("alias", pa.string()),
    ("canonical", pa.string()), ("updated_at", TS),
])
MCC_SCHEMA = pa.schema([
    ("id", pa.int64()), ("mcc", pa.string()), ("mnc", pa.string()), ("country", pa.string()),
    ("country_code", pa.string()), ("region", pa.string()), ("operator", pa.string()),
    ("brand", pa.string()), ("status", pa.string()), ("valid_from", pa.date32()),
    ("valid_to", pa.date32()), ("source", pa.string()),
])


def ts(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)


def feature(group: str, name: str, mcc: str, mnc: str, status: str | None, value: str | None,
            owner: str | None, notes: str | None, operator: str | None, changed: datetime,
            *, run: int = 1, country: str | None = "Korea, Republic of",
            code: str | None = "KR", region: str | None = "Asia") -> dict[str, Any]:
    """One features row (feature_group included; the builder moves it into the folder name)."""
    ident = hashlib.sha256("\x1f".join((group, name, mcc, mnc)).encode()).hexdigest()
    row = {
        "feature_group": group, "identity_hash": ident, "feature_name": name, "mcc": mcc,
        "mnc": mnc, "status": status, "value": value, "owner": owner, "notes": notes,
        "source": "ops_sheet", "source_updated_at": changed, "region": region,
        "country": country, "country_code": code, "operator": operator, "brand": operator,
        "attrs": json.dumps({"row": name, "비고": "메모"}, ensure_ascii=False),
        "first_run_id": 1, "first_seen_at": ts(1), "last_run_id": run,
        "last_changed_at": changed,
    }
    state = json.dumps({k: v for k, v in row.items() if k not in ("identity_hash",)},
                       default=str, sort_keys=True)
    row["row_hash"] = hashlib.md5(state.encode()).hexdigest()
    return row


#: Version 1: (group, name, mcc, mnc, status, value, owner, notes, operator, last_changed_at)
FEATURES_V1: list[dict[str, Any]] = [
    feature("volte", "VoLTE", "450", "05", "enabled", "EVS-WB", "Minjun Kim",
            "출시 완료, 전국", "SK Telecom", ts(1)),
    feature("volte", "VoLTE", "450", "08", "disabled", None, "Seoyeon Lee",
            'He said "soon", maybe', "KT", ts(2)),
    feature("volte", "VoLTE Roaming", "310", "260", "testing", '=HYPERLINK("http://x","y")',
            "Emily Carter", "line one\nline two", "T-Mobile US", ts(3), country="United States",
            code="US", region="Americas"),
    feature("volte", "VoLTE Roaming", "450", "05", "enabled", "-5", "Minjun Kim", None,
            "SK Telecom", ts(3)),
    feature("rcs", "RCS", "450", "06", "enabled", "+82 10", "@ops", "\ttabbed", "LG U+",
            ts(4)),
    feature("rcs", "RCS", "262", "01", "planned", None, None, None, "Telekom Deutschland",
            ts(5), country="Germany", code="DE", region="Europe"),
    feature("001", "Test Feature", "001", "01", "enabled", "1", "Tester",
            'comma, and "quote"\r\nCRLF', None, ts(6), country=None, code=None,
            region="Test network"),
    feature("esim", "eSIM", "450", "05", "enabled", "auto", "김민준", "한국어 메모", "SK텔레콤",
            ts(7)),
    feature("esim", "eSIM", "440", "10", "not_supported", None, "Yuki Tanaka", "@risk",
            "NTT docomo", ts(7), country="Japan", code="JP"),
    feature("esim", "eSIM Watch", "450", "05", "enabled", "opt-in", "김민준", None, "SK텔레콤",
            ts(8)),
]


def features_v2() -> list[dict[str, Any]]:
    """v1 with: KT VoLTE enabled (changed), SKT VoLTE notes edited (changed), DT RCS removed,
    RCS on 440-10 added."""
    rows = []
    for r in FEATURES_V1:
        r = dict(r)
        if (r["feature_name"], r["mnc"]) == ("VoLTE", "08"):
            r.update(status="enabled", last_run_id=2, last_changed_at=ts(10),
                     row_hash="changed-1")
        elif (r["feature_name"], r["mnc"]) == ("VoLTE", "05"):
            r.update(notes="출시 완료", last_run_id=2, last_changed_at=ts(10), row_hash="changed-2")
        elif (r["feature_name"], r["mcc"]) == ("RCS", "262"):
            continue
        rows.append(r)
    rows.append(feature("rcs", "RCS", "440", "10", "testing", None, "Yuki Tanaka", None,
                        "NTT docomo", ts(10), run=2, country="Japan", code="JP"))
    return rows


def other_tables(version: int) -> dict[str, pa.Table]:
    changes = [
        {"id": 1, "run_id": 1, "identity_hash": FEATURES_V1[0]["identity_hash"],
         "feature_group": "volte", "op": "C", "before_json": None,
         "after_json": json.dumps({"status": "enabled"}), "changed_fields": None,
         "changed_at": ts(1)},
        {"id": 2, "run_id": 1, "identity_hash": FEATURES_V1[1]["identity_hash"],
         "feature_group": "volte", "op": "U", "before_json": json.dumps({"status": "testing"}),
         "after_json": json.dumps({"status": "disabled"}), "changed_fields": ["status"],
         "changed_at": ts(2)},
        {"id": 3, "run_id": 1, "identity_hash": FEATURES_V1[7]["identity_hash"],
         "feature_group": "esim", "op": "U", "before_json": json.dumps({"notes": "메모"}),
         "after_json": json.dumps({"notes": "한국어 메모"}, ensure_ascii=False),
         "changed_fields": ["notes", "value"], "changed_at": ts(7)},
    ]
    runs = [
        {"id": 1, "trigger": "manual", "status": "succeeded", "started_at": ts(1),
         "finished_at": ts(1, 10), "day": date(2026, 11, 1), "sources": ["ops_sheet"],
         "rows_read": 10, "created": 10, "updated": 0, "deleted": 0, "error_summary": None},
        {"id": version, "trigger": "schedule", "status": "partial", "started_at": ts(2),
         "finished_at": ts(2, 10), "day": date(2026, 11, 2), "sources": ["ops_sheet", "us"],
         "rows_read": 12, "created": 0, "updated": 2, "deleted": 0,
         "error_summary": "1 row quarantined"},
    ][:version]
    daily = [{"day": date(2026, 11, d), "created": c, "updated": u, "deleted": 0, "errors": e,
              "runs": 1, "failed_runs": 0} for d, c, u, e in ((1, 10, 0, 0), (2, 0, 2, 1))]
    names = [
        {"kind": "feature_group", "alias_key": "voice over lte", "alias": "Voice over LTE",
         "canonical": "volte", "updated_at": ts(1)},
        {"kind": "operator", "alias_key": "skt", "alias": "SKT", "canonical": "SK Telecom",
         "updated_at": ts(1)},
        {"kind": "operator", "alias_key": "에스케이텔레콤", "alias": "에스케이텔레콤",
         "canonical": "SK텔레콤", "updated_at": ts(1)},
    ]
    mcc = [
        {"id": i, "mcc": m, "mnc": n, "country": c, "country_code": cc, "region": r,
         "operator": o, "brand": o, "status": "Operational", "valid_from": None,
         "valid_to": None, "source": "mcc-mnc-list"}
        for i, (m, n, c, cc, r, o) in enumerate([
            ("450", "05", "Korea, Republic of", "KR", "Asia", "SK Telecom"),
            ("450", "08", "Korea, Republic of", "KR", "Asia", "KT"),
            ("310", "260", "United States", "US", "Americas", "T-Mobile US"),
            ("262", "01", "Germany", "DE", "Europe", "Telekom Deutschland"),
        ], start=1)
    ]
    return {
        "changes": pa.Table.from_pylist(changes, CHANGE_SCHEMA),
        "runs": pa.Table.from_pylist(runs, RUN_SCHEMA),
        "daily_counts": pa.Table.from_pylist(daily, DAILY_SCHEMA),
        "name_map": pa.Table.from_pylist(names, NAME_MAP_SCHEMA),
        "mcc_mnc_map": pa.Table.from_pylist(mcc, MCC_SCHEMA),
    }


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def write_version(root: Path, version: int, features: list[dict[str, Any]],
                  tables: dict[str, pa.Table] | None = None, *, created_at: datetime | None = None,
                  point: bool = True) -> Path:
    """Write one published version folder per the layout; optionally point CURRENT.json at it."""
    layout = Layout(root)
    vdir = layout.version_dir(version)
    tables = tables if tables is not None else other_tables(version)
    infos: dict[str, TableInfo] = {}
    groups: dict[str, int] = {}
    for group in sorted({r[PARTITION_COLUMN] for r in features}):
        rows = sorted((r for r in features if r[PARTITION_COLUMN] == group),
                      key=lambda r: (r["feature_name"], r["mcc"], r["mnc"]))
        t = pa.Table.from_pylist([{k: v for k, v in r.items() if k != PARTITION_COLUMN}
                                  for r in rows], FEATURE_SCHEMA)
        _write(t, vdir / "features" / f"{PARTITION_COLUMN}={group}" / "part-0.parquet")
        groups[group] = t.num_rows
    infos["features"] = TableInfo("features", len(features),
                                  [(f.name, str(f.type)) for f in FEATURE_SCHEMA],
                                  PARTITION_COLUMN, groups)
    for name, t in tables.items():
        _write(t, vdir / name / "part-0.parquet")
        infos[name] = TableInfo(name, t.num_rows, [(f.name, str(f.type)) for f in t.schema])
    files = {p.relative_to(vdir).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(vdir.rglob("*.parquet"))}
    created = created_at or datetime(2026, 11, version, 12, 0, tzinfo=UTC)
    manifest = Manifest(FORMAT, version, version, created.isoformat(), "0001", 90, infos, files)
    (vdir / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    if point:
        layout.write_pointer(version)
    return vdir


def make_settings(tmp: Path, root: Path, **over: Any) -> Settings:
    return replace(Settings(data_dir=tmp, snapshots_dir=root), **over)


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1 and 2 (current), written once per session; tests must not modify them."""
    root = tmp_path_factory.mktemp("snapshots")
    write_version(root, 1, FEATURES_V1)
    write_version(root, 2, features_v2())
    return root


@pytest.fixture(scope="session")
def engine(shared_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An engine over the shared snapshots (v2 current)."""
    e = Engine(make_settings(tmp_path_factory.mktemp("data"), shared_root))
    yield e
    e.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty snapshots folder of the test's own."""
    r = tmp_path / "snapshots"
    r.mkdir()
    return r


@pytest.fixture
def open_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Open engines over a folder (closed after the test)."""
    made: list[Engine] = []

    def make(root: Path, **over: Any) -> Engine:
        e = Engine(make_settings(tmp_path, root, **over))
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()
