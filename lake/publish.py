"""Publish a snapshot version: export the ledger to Parquet, then make it current atomically.

Steps (each version is written once and never modified afterwards):

1. remove leftovers of dead writers from tmp/ (their versions are recorded as failed);
2. allocate the next version number in PostgreSQL (`snapshots`, unique version);
3. in one consistent read of the ledger, plan the files, then write them under
   ``tmp/v000124.<pid>.<random>/``, each fsynced and hashed, and manifest.json last;
4. rename the folder to ``versions/v000124`` (readers only ever look in versions/);
5. under the publish lock: point CURRENT.json at it (temp file + os.replace, retried on
   Windows sharing violations) unless a newer version already is current, and record it as
   published;
6. retention: remove old versions (keep the newest N, those within the grace period, and the
   current one); a version that cannot be deleted now is retried at the next publish.

A failure before step 5 completes leaves CURRENT.json untouched, removes what was written and
records the version as failed; a killed writer's folder is removed by step 1 of the next publish.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime

import psutil

from fmw.errors import Transient
from fmw.settings import Settings
from lake import fsutil
from lake.export import PublishProgress, SnapshotPlan, new_token, plan_snapshot, write_files
from lake.fsutil import fsync_dir, with_retries, write_durable
from lake.layout import MANIFEST, Layout, SnapshotError, version_name
from lake.manifest import FORMAT, Manifest
from lake.retention import (
    plan_retention,
    plan_tmp_cleanup,
    remove_tmp,
    retire,
    tmp_entries,
    version_times,
)
from ledger.export import open_export
from ledger.schema import head_revision
from ledger.snapshots import SnapshotBook

log = logging.getLogger(__name__)

ABANDONED = "interrupted: the snapshot writer ended before publishing (killed or crashed)"


class PublishError(SnapshotError):
    """A snapshot version could not be published; CURRENT.json still names the previous one."""

    def __init__(self, version: int, reason: str) -> None:
        self.version = version
        self.reason = reason
        super().__init__(f"snapshot {version_name(version)} was not published: {reason}")


def publish_snapshot(settings: Settings, run_id: int | None, *,
                     progress: PublishProgress | None = None,
                     now: datetime | None = None) -> Manifest:
    """Export the ledger to a new snapshot version and make it current.

    Args:
        settings: `snapshots_path`, `snapshot_keep`, `snapshot_grace_hours` and
            `changes_window_days` are used.
        run_id: the sync run this snapshot follows; None (on demand) records the newest run
            that changed the ledger.
        progress: receives per-step timings and each written file.
        now: the time retention measures ages against (default: now).

    Returns:
        The published version's manifest.

    Raises:
        SchemaBehind: the ledger needs `fmw db upgrade`.
        DatabaseUnavailable: the ledger cannot be reached (also while writing: retry later).
        PublishError: the version could not be written or made current (nothing changed for
            readers; the version is recorded as failed).
    """
    progress = progress or PublishProgress()
    layout = Layout(settings.snapshots_path)
    with SnapshotBook(settings) as book:
        book.require_current()
        start = time.perf_counter()
        layout.versions_dir.mkdir(parents=True, exist_ok=True)
        layout.tmp_dir.mkdir(parents=True, exist_ok=True)
        clean_leftovers(layout, book)
        version = book.allocate(run_id, at_least=layout.highest_on_disk())
        progress.step("prepare", time.perf_counter() - start)
        try:
            manifest = _write_and_switch(settings, layout, book, version, run_id, progress)
        except BaseException as exc:
            reason = str(exc) or type(exc).__name__
            _discard(layout, version)
            try:
                book.mark_failed([version], reason)
            except Exception:  # the database went away too: the next publish records it
                log.exception("could not record snapshot %s as failed", version_name(version))
            if isinstance(exc, Exception) and not isinstance(exc, PublishError | Transient):
                raise PublishError(version, reason) from exc
            raise
        start = time.perf_counter()
        try:
            apply_retention(settings, layout, book, now=now)
        except Exception:  # the version is published; retention runs again next time
            log.warning("snapshot retention failed (retried at the next publish)", exc_info=True)
        progress.step("retention", time.perf_counter() - start)
        return manifest


def _write_and_switch(settings: Settings, layout: Layout, book: SnapshotBook, version: int,
                      run_id: int | None, progress: PublishProgress) -> Manifest:
    with open_export(settings) as source:
        plan = plan_snapshot(layout, version, run_id, source.group_counts(), pid=os.getpid(),
                             token=new_token())
        recorded_run = run_id if run_id is not None else source.last_run_id()
        plan.work_dir.mkdir(parents=True)
        written = write_files(plan, source, progress)
    start = time.perf_counter()
    manifest = Manifest(
        format=FORMAT, version=version, run_id=recorded_run,
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        ledger_revision=head_revision(), changes_window_days=settings.changes_window_days,
        tables=written.tables, files=written.files,
    )
    write_durable(plan.work_dir / MANIFEST, manifest.to_json().encode("utf-8"))
    fsync_dir(plan.work_dir)
    progress.step("manifest", time.perf_counter() - start)
    start = time.perf_counter()
    _reveal(plan)
    fsync_dir(layout.versions_dir)
    size = sum(int(f["bytes"]) for f in written.files.values())
    with book.publishing(version, rows=written.tables["features"].rows, size=size,
                         manifest=json.loads(manifest.to_json())):
        try:
            current = layout.read_pointer()
        except SnapshotError:
            current = None  # an unreadable pointer is replaced by a good one
        if not (plan.final_dir / MANIFEST).is_file():
            raise SnapshotError(f"{plan.final_dir} disappeared before it became current")
        if current is None or version > current:
            layout.write_pointer(version, attempts=fsutil.ATTEMPTS, delay_s=fsutil.DELAY_S)
    progress.step("switch", time.perf_counter() - start)
    return manifest


def _reveal(plan: SnapshotPlan) -> None:
    """Rename the finished tmp folder into versions/ (retried while Windows holds it)."""
    if plan.final_dir.exists():  # never replace a published version
        raise SnapshotError(f"{plan.final_dir} already exists")
    with_retries(lambda: os.rename(plan.work_dir, plan.final_dir),
                 f"rename {plan.work_dir} to {plan.final_dir}")


def _discard(layout: Layout, version: int) -> None:
    """Best effort: remove what a failed publish wrote (the next publish retries the rest)."""
    entries = [e for e in tmp_entries(layout)
               if e.name.startswith(f"{version_name(version)}.{os.getpid()}.")]
    remove_tmp(layout, entries)
    try:
        pointer = layout.read_pointer()
    except SnapshotError:
        pointer = None
    if pointer != version and layout.version_dir(version).exists():
        retire(layout, (version,), new_token())


#: A version row 'writing' for longer than this belongs to a writer that is gone.
STALE_WRITING_S = 3600.0


def clean_leftovers(layout: Layout, book: SnapshotBook) -> list[int]:
    """Remove dead writers' folders, retired versions and pointer temp files from earlier runs.

    Returns the versions whose abandoned folders were removed (recorded as failed).
    """
    now = datetime.now(UTC)
    plan = plan_tmp_cleanup(tmp_entries(layout), now, _alive)
    removed = remove_tmp(layout, plan)
    failed = book.mark_failed(list(removed.removed), ABANDONED)
    # Writers killed before their folder existed, or whose folder someone deleted by hand.
    failed += book.fail_abandoned(STALE_WRITING_S, ABANDONED)
    if removed.removed or failed:
        log.info("removed abandoned snapshot folders %s", [version_name(v) for v in removed.removed])
    return sorted(set(removed.removed))


def _alive(pid: int) -> bool:
    return pid == os.getpid() or psutil.pid_exists(pid)


def apply_retention(settings: Settings, layout: Layout, book: SnapshotBook, *,
                    now: datetime | None = None) -> list[int]:
    """Delete versions retention no longer keeps; returns the deleted versions.

    Never raises for a version that cannot be deleted: it is logged and retried next time.
    """
    try:
        current = layout.read_pointer()
    except SnapshotError:
        return []  # without knowing the current version nothing is safe to delete
    plan = plan_retention(version_times(layout), current, settings.snapshot_keep,
                          settings.snapshot_grace_hours, now or datetime.now(UTC))
    if not plan.delete:
        return []
    done = retire(layout, plan.delete, new_token())
    book.mark_deleted(list(done.removed))
    return list(done.removed)

