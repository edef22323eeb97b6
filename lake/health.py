"""Which snapshot version readers should use, and what is wrong with the others.

A version is good when its manifest loads, every file has the size and sha256 the manifest
records, and every Parquet footer is readable with the row counts the manifest records. The
full check reads every byte, so it runs once per process per version (keyed by the version
folder and its manifest's modification time); later calls only re-check file sizes, which
costs one `stat` per file. A bad current version is skipped: readers fall back to the newest
older good version and the problem is logged (once per process) and returned for health.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from lake.layout import MANIFEST, Layout, SnapshotError, version_name
from lake.manifest import Manifest, load_manifest, verify

log = logging.getLogger(__name__)

_lock = threading.Lock()
_verified: dict[tuple[str, int, int], tuple[str, ...]] = {}
_warned: set[tuple[int | None, int | None, tuple[str, ...]]] = set()


def _footer_problems(version_dir: Path, manifest: Manifest) -> list[str]:
    problems = []
    rows: dict[str, int] = {}
    for rel in sorted(manifest.files):
        if not rel.endswith(".parquet"):
            continue
        try:
            meta = pq.read_metadata(version_dir / rel)
        except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError)
            problems.append(f"{rel}: unreadable Parquet footer: {exc}")
            continue
        table = rel.split("/", 1)[0]
        rows[table] = rows.get(table, 0) + meta.num_rows
    if not problems:
        for name, info in manifest.tables.items():
            if rows.get(name, 0) != info.rows:
                problems.append(f"{name}: {rows.get(name, 0)} rows in the files, "
                                f"manifest says {info.rows}")
    return problems


def _sizes(version_dir: Path, manifest: Manifest) -> list[str]:
    problems = []
    for rel, meta in sorted(manifest.files.items()):
        try:
            size = (version_dir / rel).stat().st_size
        except OSError:
            problems.append(f"{rel}: missing")
            continue
        if size != meta["bytes"]:
            problems.append(f"{rel}: {size} bytes, manifest says {meta['bytes']}")
    return problems


def check_version(layout: Layout, version: int) -> list[str]:
    """Problems of one version (empty when good); see the module docstring for the cost."""
    vdir = layout.version_dir(version)
    name = version_name(version)
    try:
        st = (vdir / MANIFEST).stat()
        manifest = load_manifest(vdir)
    except (OSError, SnapshotError) as exc:
        return [f"{name}: {exc}"]
    if manifest.version != version:
        return [f"{name}: manifest names version {manifest.version}"]
    key = (str(vdir.resolve()), st.st_mtime_ns, st.st_size)
    with _lock:
        cached = _verified.get(key)
    if cached is not None:
        problems = cached or tuple(_sizes(vdir, manifest))
    else:
        problems = tuple(verify(vdir, manifest) or _footer_problems(vdir, manifest))
        with _lock:
            _verified[key] = problems
    return [f"{name}: {p}" for p in problems]


def current_good_version(layout: Layout) -> tuple[int | None, list[str]]:
    """The version readers should open, and the problems met on the way.

    The pointer's version if it is good, else the newest older good version. (None, []) when
    nothing was published yet; (None, problems) when no version is good.
    """
    problems: list[str] = []
    try:
        pointer = layout.read_pointer()
    except SnapshotError as exc:
        pointer, problems = None, [str(exc)]
    if pointer is not None:
        problems = check_version(layout, pointer)
        if not problems:
            return pointer, []  # the common case: no folder listing needed
    versions = layout.versions()
    if pointer is None and not problems:
        if not versions:
            return None, []
        problems.append(f"{layout.pointer} is missing but versions exist")
    good = None
    for v in sorted((v for v in versions if pointer is None or v < pointer), reverse=True):
        found = check_version(layout, v)
        if not found:
            good = v
            break
        problems += found
    _warn_once(pointer, good, problems)
    return good, problems


def _warn_once(pointer: int | None, good: int | None, problems: list[str]) -> None:
    key = (pointer, good, tuple(problems))
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    where = version_name(good) if good is not None else "no version"
    log.warning("snapshot problems; readers use %s: %s", where, "; ".join(problems))


@dataclass(frozen=True)
class SnapshotHealth:
    """For health endpoints: the pointer, the version readers get, and what is wrong."""

    pointer: int | None
    serving: int | None
    versions: tuple[int, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.serving is not None


def snapshot_health(layout: Layout) -> SnapshotHealth:
    """The state of a snapshots folder (never raises for a bad folder: it reports it)."""
    try:
        pointer = layout.read_pointer()
    except SnapshotError:
        pointer = None
    serving, problems = current_good_version(layout)
    return SnapshotHealth(pointer, serving, tuple(layout.versions()), tuple(problems))
