"""Terminal output of the CLI (rich tables and the live sync progress)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fmw.settings import Settings
from ledger.runs import RunSummary
from ledger.sync import Progress as SyncEvents
from ledger.sync import SyncResult

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def out(message: str) -> None:
    console.print(message, markup=False)


def error(message: str) -> None:
    err_console.print(f"error: {message}", style="bold red", markup=False)


class SyncProgress(SyncEvents):
    """Live progress on stderr: one bar per COPY, one line per finished phase with rows/s."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            console=err_console, transient=True, disable=not enabled,
        )
        self._tasks: dict[str, Any] = {}
        self._started: dict[str, float] = {}
        self._done: dict[str, int] = {}

    def __enter__(self) -> SyncProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def rows(self, label: str, n: int, total: int | None) -> None:
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=total, rate="")
            self._started[label] = time.perf_counter()
        task = self._tasks[label]
        self._done[label] = self._done.get(label, 0) + n
        secs = max(time.perf_counter() - self._started[label], 1e-6)
        self._progress.update(task, advance=n, rate=f"{self._done[label] / secs:,.0f} rows/s")

    def phase(self, label: str, rows: int, seconds: float) -> None:
        if label in self._tasks:
            self._progress.remove_task(self._tasks.pop(label))
        if self.enabled:
            rate = f"{rows / seconds:,.0f} rows/s" if seconds > 0 and rows else ""
            err_console.print(f"  {label:<40} {rows:>12,} rows {seconds:8.2f} s  {rate}",
                              markup=False)


def sync_result(r: SyncResult) -> None:
    c = r.counts
    head = "dry run (rolled back)" if r.dry_run else f"run {r.run_id}"
    out(f"{head}: {r.status} - read {c.get('rows_read', 0):,} rows, "
        f"created {c.get('created', 0):,}, updated {c.get('updated', 0):,}, "
        f"deleted {c.get('deleted', 0):,}, unchanged {c.get('unchanged', 0):,}, "
        f"bad {c.get('rows_bad', 0):,}, conflicts {c.get('conflicts', 0):,}")
    if c.get("rows_bad") or c.get("conflicts"):
        out(f"quarantined rows: `fmw runs {r.run_id}`")


def db_status(settings: Settings, rev: str | None, head: str, counts: dict[str, int]) -> None:
    where = f"embedded in {settings.pg_dir}" if settings.embedded else "external"
    out(f"database: {where}; schema {settings.schema!r} at {rev or 'nothing'} (code: {head})")
    for k, v in counts.items():
        out(f"  {k:<12} {v:>12,}")


def runs_table(items: list[RunSummary]) -> None:
    t = Table("run", "started", "trigger", "status", "read", "bad", "C", "U", "D", "seconds",
              title="runs (newest first)")
    for r in items:
        secs = f"{(r.finished_at - r.started_at).total_seconds():.1f}" if r.finished_at else ""
        style = {"failed": "red", "partial": "yellow", "running": "cyan"}.get(r.status)
        t.add_row(str(r.id), r.started_at.strftime("%m-%d %H:%M:%S"), r.trigger,
                  r.status, f"{r.rows_read:,}", f"{r.rows_bad:,}", f"{r.created:,}",
                  f"{r.updated:,}", f"{r.deleted:,}", secs, style=style)
    console.print(t)


def run_detail(r: RunSummary, errors: list[dict[str, Any]]) -> None:
    out(f"run {r.id} ({r.trigger}) {r.status}, started {r.started_at:%Y-%m-%d %H:%M:%S %Z}")
    if r.error_summary:
        out(f"reason: {r.error_summary}")
    out(f"read {r.rows_read:,}, bad {r.rows_bad:,}, conflicts {r.conflicts:,}, created "
        f"{r.created:,}, updated {r.updated:,}, deleted {r.deleted:,}, unchanged {r.unchanged:,}")
    for name, st in r.source_stats.items():
        out(f"  source {name}: " + ", ".join(f"{k} {v}" for k, v in st.items()))
    if r.phase_seconds:
        out("  phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in r.phase_seconds.items()))
    if errors:
        t = Table("source", "row", "kind", "reason", title=f"quarantined rows ({len(errors)})")
        for e in errors:
            t.add_row(str(e["source"]), str(e["row_no"] or ""), e["kind"], e["reason"])
        console.print(t)


def changes_table(rows: list[dict[str, Any]]) -> None:
    t = Table("id", "run", "op", "group", "identity", "changed fields", "at")
    for c in rows:
        after = c["after_json"] or c["before_json"] or {}
        ident = f"{after.get('feature_name')} @ {after.get('mcc')}-{after.get('mnc')}"
        t.add_row(str(c["id"]), str(c["run_id"]), c["op"], c["feature_group"], ident,
                  ", ".join(c["changed_fields"] or []), f"{c['changed_at']:%Y-%m-%d %H:%M}")
    console.print(t)


def rows_table(columns: list[str], rows: list[dict[str, Any]]) -> None:
    t = Table(*columns)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    console.print(t)


def snapshot_line(job: Any) -> None:
    """What happened to the snapshot after a sync (`scheduler.jobs.JobResult`)."""
    if job.snapshot is not None:
        out(f"published snapshot v{job.snapshot.version:06d}")
    elif job.snapshot_error:
        error(f"the sync was applied but no snapshot was published: {job.snapshot_error}")
