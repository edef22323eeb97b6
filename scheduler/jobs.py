"""Jobs: what a sync trigger (CLI, dev API, schedule) runs — sync the ledger, then publish."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fmw.errors import FmwError
from fmw.settings import Settings
from ledger.sync import Progress, SyncPlan, SyncResult, run_sync

if TYPE_CHECKING:
    from lake.manifest import Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    sync: SyncResult
    snapshot: Manifest | None
    snapshot_error: str | None = None


def sync_and_publish(settings: Settings, plan: SyncPlan, progress: Progress | None = None,
                     publish: bool = True) -> JobResult:
    """Run one sync; when it applied (succeeded or partial, not a dry run), publish a snapshot.

    A failed publish does not undo the sync (the ledger is the source of truth); it is
    reported in the result and logged, and readers keep serving the previous snapshot.

    Raises:
        SyncAlreadyRunning, SyncFailed, SchemaBehind: from the sync.
    """
    result = run_sync(settings, plan, progress)
    if not publish or result.dry_run:
        return JobResult(sync=result, snapshot=None)
    from lake.publish import publish_snapshot
    try:
        manifest = publish_snapshot(settings, result.run_id)
    except FmwError as exc:
        log.error("run %s synced but the snapshot was not published: %s", result.run_id, exc)
        return JobResult(sync=result, snapshot=None, snapshot_error=str(exc))
    return JobResult(sync=result, snapshot=manifest)
