"""Which version a read uses: current, pinned, as of a date; damaged versions; new publishes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lake.health import current_good_version
from lake.layout import Layout
from query import CorruptSnapshot, Engine, NoSnapshot, QuerySpec, UnknownVersion
from query.snapshot import NoGoodVersion, SnapshotEvent, SnapshotReadError
from tests.query.conftest import FEATURES_V1, features_v2, write_version


def test_reads_the_version_current_json_names(engine: Engine) -> None:
    r = engine.query(QuerySpec())
    assert (r.version, r.total, r.fallback) == (2, 10, None)
    assert engine.query(QuerySpec(), version=1).version == 1


def test_a_new_publish_is_picked_up_without_a_restart(root: Path,
                                                      open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    engine = open_engine(root)
    assert engine.query(QuerySpec()).version == 1
    write_version(root, 2, features_v2())
    r = engine.query(QuerySpec(filters=(("mcc", "262"),)))
    assert (r.version, r.total) == (2, 0)  # the removed row is gone
    Layout(root).write_pointer(1)  # a rollback of the pointer is seen too
    assert engine.query(QuerySpec(filters=(("mcc", "262"),))).total == 1


@pytest.mark.parametrize(("as_of", "version"), [
    (date(2026, 11, 1), 1), (date(2026, 11, 2), 2), (date(2026, 12, 31), 2),
    (datetime(2026, 11, 2, 11, 59, tzinfo=UTC), 1), (datetime(2026, 11, 2, 12, 0), 2),
])
def test_as_of_picks_the_newest_version_created_by_then(engine: Engine, as_of, version: int
                                                        ) -> None:
    assert engine.query(QuerySpec(), as_of=as_of).version == version


def test_as_of_before_every_kept_version(engine: Engine) -> None:
    with pytest.raises(UnknownVersion) as info:
        engine.query(QuerySpec(), as_of=date(2026, 10, 31))
    assert "v000001 (2026-11-01T12:00:00+00:00)" in str(info.value)


def test_unknown_version_lists_the_kept_ones(engine: Engine) -> None:
    with pytest.raises(UnknownVersion) as info:
        engine.query(QuerySpec(), version=7)
    assert info.value.valid == ("v000001", "v000002")


def test_no_snapshot_yet(root: Path, open_engine: Callable[..., Engine]) -> None:
    engine = open_engine(root)
    with pytest.raises(NoSnapshot) as info:
        engine.query(QuerySpec())
    assert "CURRENT.json is missing" in str(info.value)


def test_a_snapshots_folder_that_does_not_exist(tmp_path: Path,
                                                open_engine: Callable[..., Engine]) -> None:
    with pytest.raises(NoSnapshot):
        open_engine(tmp_path / "nowhere").query(QuerySpec())


def _damage(vdir: Path, how: str) -> None:
    part = next((vdir / "features").rglob("part-0.parquet"))
    if how == "flip":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    elif how == "footer":
        part.write_bytes(part.read_bytes()[:-8] + b"XXXXXXXX")
    elif how == "truncate":
        part.write_bytes(part.read_bytes()[:100])
    elif how == "missing":
        part.unlink()
    elif how == "manifest":
        (vdir / "manifest.json").write_text("{not json", encoding="utf-8")


@pytest.mark.parametrize("how", ["flip", "footer", "truncate", "missing"])
def test_a_damaged_current_version_falls_back_and_says_so(root: Path, how: str,
                                                          open_engine: Callable[..., Engine]
                                                          ) -> None:
    write_version(root, 1, FEATURES_V1)
    write_version(root, 2, features_v2())
    _damage(root / "versions" / "v000002", how)
    engine = open_engine(root)
    r = engine.query(QuerySpec())
    assert r.version == 1 and r.total == 10
    assert r.fallback is not None and (r.fallback.requested, r.fallback.used) == (2, 1)
    assert "v000002 is damaged" in r.fallback.message
    assert engine.snapshot().fallback == r.fallback
    with pytest.raises(CorruptSnapshot) as info:  # asked for by number: no silent substitute
        engine.query(QuerySpec(), version=2)
    assert info.value.version == 2 and info.value.problems


def test_a_version_with_a_broken_manifest_is_not_used(root: Path,
                                                      open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    write_version(root, 2, features_v2())
    _damage(root / "versions" / "v000002", "manifest")
    r = open_engine(root).query(QuerySpec())
    assert r.version == 1 and r.fallback is not None
    assert "not a valid manifest" in r.fallback.message


def test_pointer_to_a_missing_version_falls_back(root: Path,
                                                 open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    (root / "CURRENT.json").write_text(json.dumps({"version": 5}), encoding="utf-8")
    r = open_engine(root).query(QuerySpec())
    assert r.version == 1 and r.fallback is not None and "missing" in r.fallback.message


def test_every_version_damaged(root: Path, open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    _damage(root / "versions" / "v000001", "flip")
    with pytest.raises(NoSnapshot) as info:
        open_engine(root).query(QuerySpec())
    assert "checksum mismatch" in str(info.value)


def test_check_can_be_turned_off(root: Path, tmp_path: Path) -> None:
    from tests.query.conftest import make_settings

    write_version(root, 1, FEATURES_V1)
    (root / "versions" / "v000001" / "changes" / "part-0.parquet").write_bytes(b"x")
    with Engine(make_settings(tmp_path, root), check=False) as engine:
        assert engine.query(QuerySpec()).fallback is None


def test_versions_groups_and_schema(engine: Engine) -> None:
    infos = engine.versions()
    assert [(v.version, v.current, v.rows) for v in infos] == [(2, True, 10), (1, False, 10)]
    assert engine.groups() == {"001": 1, "esim": 3, "rcs": 2, "volte": 4}
    assert engine.groups(version=1)["rcs"] == 2
    schema = engine.schema("features")
    assert schema.column("feature_group").type == "VARCHAR"
    assert schema.column("updated_at").name == "last_changed_at"
    assert schema.names[:4] == ("identity_hash", "row_hash", "feature_group", "feature_name")
    assert engine.schema("changes").column("changed_fields").kind == "list"


def test_an_empty_features_table_has_its_columns(root: Path,
                                                 open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, [])
    engine = open_engine(root)
    r = engine.query(QuerySpec(filters=(("mcc", "450"),), order=("-updated_at",)))
    assert r.total == 0 and r.rows.num_rows == 0
    assert "feature_group" in r.columns and "last_changed_at" in r.columns
    assert engine.groups() == {}


def test_a_key_value_folder_above_the_snapshots_adds_no_column(
        tmp_path: Path, open_engine: Callable[..., Engine]) -> None:
    """Regression: DuckDB's hive partitioning turned /…/env=prod/… into a column "env"."""
    root = tmp_path / "env=prod" / "snapshots"
    write_version(root, 1, FEATURES_V1)
    engine = open_engine(root)
    assert "env" not in engine.schema("features").names
    assert "env" not in engine.query(QuerySpec()).columns
    assert "env" not in engine.sql("DESCRIBE features").rows.column("column_name").to_pylist()
    assert engine.query(QuerySpec(feature_group="001")).total == 1
    write_version(root, 2, features_v2())
    changed = engine.diff(1, 2).rows.to_pylist()[-1]
    assert "env" not in json.loads(changed["before_json"])


# -- damage after a version was verified, and a missing pointer (issue 11, section 4) --------

def _truncate(part: Path) -> None:
    part.write_bytes(part.read_bytes()[:-100])


def _flip(part: Path) -> None:
    """One byte inside a value: same size, and DuckDB still reads the file (wrong data)."""
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))


def _events(engine: Engine) -> list[SnapshotEvent]:
    seen: list[SnapshotEvent] = []
    engine.resolver.listener = seen.append
    return seen


def test_a_read_error_on_a_verified_current_version_rechecks_it_and_falls_back(
        root: Path, open_engine: Callable[..., Engine]) -> None:
    """Regression: a file truncated under a running reader failed every query of its group
    (the checks ran once per version), instead of falling back."""
    write_version(root, 1, FEATURES_V1)
    vdir = write_version(root, 2, features_v2())
    engine = open_engine(root)
    events = _events(engine)
    assert engine.query(QuerySpec(feature_group="volte")).version == 2  # v2 verified, in use
    _truncate(vdir / "features" / "feature_group=volte" / "part-0.parquet")
    with pytest.raises(SnapshotReadError) as info:
        engine.query(QuerySpec(feature_group="volte"), version=2)
    assert info.value.version == 2 and "bytes, manifest says" in info.value.problems[0]
    r = engine.query(QuerySpec(feature_group="volte"))
    assert (r.version, r.total) == (1, 4) and r.fallback is not None
    assert (r.fallback.requested, r.fallback.used) == (2, 1)
    assert [(e.kind, e.version) for e in events] == [("fallback", 1)]


def test_a_read_error_on_an_intact_version_is_raised_as_it_was_and_rechecks_once(
        root: Path, open_engine: Callable[..., Engine]) -> None:
    vdir = write_version(root, 1, FEATURES_V1)
    engine = open_engine(root)
    resolver = engine.resolver
    assert resolver.read_failed(1, OSError("not damage")) == ()  # checked again: intact
    _truncate(vdir / "features" / "feature_group=volte" / "part-0.parquet")
    # Within reverify_gap_s of that check another failing read does not hash it again (a
    # query failing for another reason must not cost a full check per request) ...
    assert resolver.read_failed(1, OSError("not damage")) == ()
    assert engine.snapshot().fallback is None
    resolver.reverify_gap_s = 0  # ... after it, it does
    problems = resolver.read_failed(1, OSError("damage"))
    assert len(problems) == 1 and "bytes, manifest says" in problems[0]
    assert resolver.problems(1) == problems
    with pytest.raises(NoGoodVersion):
        engine.snapshot()


def test_the_periodic_recheck_finds_a_changed_byte_that_reads_without_error(
        root: Path, open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    vdir = write_version(root, 2, features_v2())
    engine = open_engine(root)
    events = _events(engine)
    assert engine.query(QuerySpec()).version == 2
    part = vdir / "features" / "feature_group=esim" / "part-0.parquet"
    original = part.read_bytes()
    _flip(part)
    assert engine.query(QuerySpec()).version == 2  # nothing fails: only a check can tell
    assert engine.resolver.reverify() == {
        2: ("features/feature_group=esim/part-0.parquet: checksum mismatch",)}
    r = engine.query(QuerySpec())
    assert r.version == 1 and r.fallback is not None and "checksum mismatch" in r.fallback.message
    part.write_bytes(original)  # repaired in place: the next check serves v2 again
    assert engine.resolver.reverify() == {1: (), 2: ()}
    assert engine.query(QuerySpec()).fallback is None
    assert [(e.kind, e.version) for e in events] == [("fallback", 1), ("normal", 2)]


def test_a_missing_pointer_serves_the_newest_good_version_and_says_so(
        root: Path, open_engine: Callable[..., Engine]) -> None:
    """Regression: a missing CURRENT.json (versions on disk) answered "no snapshot has been
    published yet" while lake.health already fell back to the newest good version."""
    write_version(root, 1, FEATURES_V1)
    write_version(root, 2, features_v2())
    write_version(root, 3, features_v2(), point=False)
    _damage(root / "versions" / "v000003", "flip")
    (root / "CURRENT.json").unlink()
    engine = open_engine(root)
    events = _events(engine)
    r = engine.query(QuerySpec())
    assert r.version == 2 and r.fallback is not None and r.fallback.requested is None
    assert r.fallback.message == "CURRENT.json is missing; serving v000002"
    assert [(e.kind, e.version) for e in events] == [("fallback", 2)]
    assert current_good_version(Layout(root))[0] == 2  # readers and health agree
    Layout(root).write_pointer(2)  # put back: normal again, no restart
    assert engine.query(QuerySpec()).fallback is None


def test_an_unreadable_pointer_serves_the_newest_good_version(
        root: Path, open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    (root / "CURRENT.json").write_text("{half", encoding="utf-8")
    r = open_engine(root).query(QuerySpec())
    assert r.version == 1 and r.fallback is not None and "unreadable" in r.fallback.message


def test_every_version_damaged_is_not_nothing_published(root: Path,
                                                        open_engine: Callable[..., Engine]
                                                        ) -> None:
    write_version(root, 1, FEATURES_V1)
    _damage(root / "versions" / "v000001", "flip")
    (root / "CURRENT.json").unlink()
    with pytest.raises(NoGoodVersion):
        open_engine(root).query(QuerySpec())
    (root / "versions" / "v000001" / "manifest.json").unlink()  # no published version left
    with pytest.raises(NoSnapshot) as info:
        open_engine(root).query(QuerySpec())
    assert not isinstance(info.value, NoGoodVersion)


def test_an_ordinary_publish_is_not_an_event_but_recovery_is(tmp_path):
    """Regression: every new version was announced as "serving vN again" (and alerted)."""
    from query.snapshot import Fallback, Resolver
    events = []
    r = Resolver(tmp_path, listener=events.append)
    r._note(1, None, "")
    r._note(2, None, "")  # a new version published
    r._note(3, None, "")
    assert events == []
    r._note(2, Fallback(3, 2, ("damaged",)), "")
    r._note(4, None, "")  # a good version again after the fallback
    assert [e.kind for e in events] == ["fallback", "normal"]
