"""A damaged snapshot version is detected and readers fall back to the newest good one."""

from __future__ import annotations

import logging

import pyarrow.parquet as pq
import pytest

from lake.health import check_version, current_good_version, snapshot_health
from lake.layout import MANIFEST, Layout
from lake.manifest import Manifest, load_manifest, sha256_file
from lake.publish import publish_snapshot

GROUP_FILE = "features/feature_group=volte/part-0.parquet"


@pytest.fixture
def two_versions(ledger):
    publish_snapshot(ledger.settings, None)
    publish_snapshot(ledger.settings, None)
    layout = Layout(ledger.settings.snapshots_path)
    assert layout.read_pointer() == 2
    return layout


def flip_bytes(layout: Layout) -> None:
    p = layout.version_dir(2) / GROUP_FILE
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def truncate(layout: Layout) -> None:
    p = layout.version_dir(2) / GROUP_FILE
    p.write_bytes(p.read_bytes()[:-100])


def remove_file(layout: Layout) -> None:
    (layout.version_dir(2) / "runs" / "part-0.parquet").unlink()


def bad_footer_with_matching_checksum(layout: Layout) -> None:
    """A writer bug, not disk damage: the manifest's checksum matches a file with no footer."""
    vdir = layout.version_dir(2)
    p = vdir / GROUP_FILE
    p.write_bytes(p.read_bytes()[:-8] + b"\0" * 8)
    m = load_manifest(vdir)
    files = {**m.files, GROUP_FILE: {"sha256": sha256_file(p), "bytes": p.stat().st_size}}
    (vdir / MANIFEST).write_text(Manifest(**{**m.__dict__, "files": files}).to_json())


def garbage_manifest(layout: Layout) -> None:
    (layout.version_dir(2) / MANIFEST).write_text("{not json")


@pytest.mark.parametrize(("damage", "expected"), [
    (flip_bytes, f"v000002: {GROUP_FILE}: checksum mismatch"),
    (truncate, f"v000002: {GROUP_FILE}: "),
    (remove_file, "v000002: runs/part-0.parquet: missing"),
    (bad_footer_with_matching_checksum, f"v000002: {GROUP_FILE}: unreadable Parquet footer"),
    (garbage_manifest, "is not a valid manifest"),
])
def test_damaged_current_version_is_skipped_for_the_previous_good_one(two_versions, caplog,
                                                                      damage, expected):
    damage(two_versions)
    with caplog.at_level(logging.WARNING, logger="lake.health"):
        version, problems = current_good_version(two_versions)
    assert version == 1
    assert len(problems) == 1 and expected in problems[0]
    assert any("readers use v000001" in r.message for r in caplog.records)
    health = snapshot_health(two_versions)
    assert (health.pointer, health.serving, health.ok) == (2, 1, False)
    assert health.problems == tuple(problems)


def test_intact_versions_are_good(two_versions):
    assert current_good_version(two_versions) == (2, [])
    assert snapshot_health(two_versions).ok


def test_no_good_version_at_all_is_reported(two_versions):
    for v in (1, 2):
        (two_versions.version_dir(v) / MANIFEST).write_text("[]")
    version, problems = current_good_version(two_versions)
    assert version is None and len(problems) == 2


def test_nothing_published_yet_is_not_a_problem(tmp_path):
    assert current_good_version(Layout(tmp_path)) == (None, [])


def test_a_missing_pointer_falls_back_to_the_newest_good_version(two_versions):
    two_versions.pointer.unlink()
    version, problems = current_good_version(two_versions)
    assert version == 2 and "CURRENT.json is missing" in problems[0]


def test_a_verified_version_is_hashed_once_per_process_then_only_sizes_are_checked(two_versions):
    assert check_version(two_versions, 2) == []
    flip_bytes(two_versions)  # same size: only a new process (a full check) would notice
    assert check_version(two_versions, 2) == []
    truncate(two_versions)
    assert check_version(two_versions, 2) == [
        f"v000002: {GROUP_FILE}: {(two_versions.version_dir(2) / GROUP_FILE).stat().st_size} "
        f"bytes, manifest says {load_manifest(two_versions.version_dir(2)).files[GROUP_FILE]['bytes']}"]
    assert pq.read_metadata(two_versions.version_dir(1) / GROUP_FILE).num_rows == 700
