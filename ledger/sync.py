"""The sync run: sources -> stage (COPY) -> normalise/validate in SQL -> diff -> changes -> features.

Everything a run writes to the ledger happens in one transaction; the run row itself is
written first on a second, autocommit connection that also holds the sync lock, so other
processes can see which run is in progress and a failed run is recorded even though its
work is rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from fmw.errors import FmwError, SourceError, SyncFailed
from fmw.settings import Settings, SourceConfig
from ledger import apply as apply_mod
from ledger import problems, runs
from ledger.db import connect
from ledger.normalize import MAPPED_KINDS, MM_TODAY, STAGE_DDL, stage_insert_sql
from ledger.schema import require_current
from ledger.sources import read_source
from ledger.sources.base import SourceLimits, SourceTable
from ledger.stage import clean_strings, copy_table, create_raw_table

RunStatus = Literal["running", "succeeded", "partial", "failed"]


class Progress:
    """Receives progress events; the CLI renders them, tests and services ignore them."""

    def phase(self, label: str, rows: int, seconds: float) -> None:
        """A phase finished having handled `rows` rows."""

    def rows(self, label: str, n: int, total: int | None) -> None:
        """`n` more rows were handled in the phase `label`."""


@dataclass(frozen=True)
class SyncPlan:
    """What a run will read and which sources may delete, before anything is touched."""

    sources: tuple[SourceConfig, ...]
    priority: tuple[str, ...]
    full_sources: tuple[str, ...]
    trigger: str
    dry_run: bool = False

    @property
    def partial_selection(self) -> bool:
        return len(self.sources) < len(self.priority)


@dataclass(frozen=True)
class SyncResult:
    run_id: int
    status: RunStatus
    counts: dict[str, int]
    source_stats: dict[str, Any]
    phase_seconds: dict[str, float]
    error_summary: str | None = None
    dry_run: bool = False


def plan_sync(settings: Settings, only: list[str] | None = None, trigger: str = "cli",
              dry_run: bool = False) -> SyncPlan:
    """Decide which sources a run reads, in priority order (pure; raises ConfigError)."""
    if not settings.sources:
        raise FmwError("no sources are configured: add [[sources]] to fmw.toml (see `fmw init`)")
    chosen = [settings.source(n) for n in only] if only else list(settings.sources)
    order = [s.name for s in settings.sources]
    chosen.sort(key=lambda s: order.index(s.name))
    return SyncPlan(
        sources=tuple(chosen), priority=tuple(order),
        full_sources=tuple(s.name for s in chosen if s.mode == "full"),
        trigger=trigger, dry_run=dry_run,
    )


def run_sync(settings: Settings, plan: SyncPlan, progress: Progress | None = None) -> SyncResult:
    """Execute `plan`: one run, one transaction, all or nothing.

    Raises:
        SchemaBehind: the schema needs `fmw db upgrade`.
        SyncAlreadyRunning: another process is syncing.
        SyncFailed: the run failed and was rolled back (the run row says why).
    """
    progress = progress or Progress()
    lock_conn = connect(settings, autocommit=True, application_name="fmw-sync-lock")
    try:
        require_current(lock_conn, settings.schema)
        runs.acquire_lock(lock_conn, settings.schema)
        try:
            runs.fail_interrupted_runs(lock_conn, settings.schema)
            run_id = runs.start_run(lock_conn, plan.trigger, [s.name for s in plan.sources],
                                    settings.timezone)
            return _run(settings, plan, run_id, lock_conn, progress)
        finally:
            if not lock_conn.closed:
                runs.release_lock(lock_conn, settings.schema)
    finally:
        lock_conn.close()


def _run(settings: Settings, plan: SyncPlan, run_id: int, lock_conn: psycopg.Connection,
         progress: Progress) -> SyncResult:
    conn = connect(settings, application_name=runs.run_backend_name(settings.schema, run_id))
    ctx = _RunContext(run_id=run_id)
    try:
        result = _execute(conn, settings, plan, ctx, progress)
    except BaseException as exc:
        conn.rollback()
        if ctx.finished:  # the run row already says why (bad-row share above the limit)
            raise
        reason = _reason(exc)
        with lock_conn.transaction():
            if isinstance(exc, SourceError):
                runs.record_run_error(lock_conn, run_id, source=exc.source, row=exc.row,
                                      kind="source", reason=exc.reason)
            runs.finish_run(lock_conn, run_id, "failed", counts=ctx.counts,
                            source_stats=ctx.source_stats, phase_seconds=ctx.phases,
                            error_summary=reason)
        if isinstance(exc, SyncFailed):
            raise
        if isinstance(exc, Exception):
            raise SyncFailed(run_id, reason) from exc
        raise
    finally:
        conn.close()
    if plan.dry_run:
        lock_conn.execute("DELETE FROM runs WHERE id = %s", (run_id,))
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by the user (Ctrl+C); nothing was applied"
    if isinstance(exc, psycopg.Error):
        diag = getattr(exc, "diag", None)
        msg = (diag.message_primary if diag and diag.message_primary else str(exc)).strip()
        return f"database error: {msg}"
    return str(exc) or type(exc).__name__


@dataclass
class _RunContext:
    run_id: int
    counts: dict[str, int] = field(default_factory=dict)
    source_stats: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    finished: bool = False
    max_stored: int = 10_000  # quarantined rows stored per source (settings)
    valid: int = 0  # staged rows that passed validation

    def timed(self, name: str, started: float) -> None:
        self.phases[name] = round(self.phases.get(name, 0.0) + time.perf_counter() - started, 3)


def _execute(conn: psycopg.Connection, settings: Settings, plan: SyncPlan, ctx: _RunContext,
             progress: Progress) -> SyncResult:
    run_id = ctx.run_id
    conn.execute("SET temp_buffers = '512MB'")  # must precede the session's first temp table
    conn.execute("SET LOCAL work_mem = '256MB'")
    conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    watch_client(conn)
    row = conn.execute("SELECT (now() AT TIME ZONE %s)::date", (settings.timezone,)).fetchone()
    assert row is not None
    conn.execute(MM_TODAY, {"day": row[0]})
    mapped = {r[0] for r in conn.execute("SELECT DISTINCT kind FROM name_map").fetchall()}
    conn.execute(STAGE_DDL)

    limits = SourceLimits.from_settings(settings)
    ctx.max_stored = settings.source_max_stored_errors
    for rank, cfg in enumerate(plan.sources):
        _stage_source(conn, cfg, rank, mapped, settings.timezone, ctx, progress, limits)
        _cap_stored_errors(conn, ctx, cfg.name, settings.source_max_stored_errors)

    t0 = time.perf_counter()
    outcome = apply_mod.resolve(conn, run_id, plan, ctx.valid)
    ctx.counts["conflicts"] = outcome.conflicts
    ctx.counts["rows_bad"] += outcome.duplicates
    if outcome.duplicates or outcome.conflicts:
        for cfg in plan.sources:
            _cap_stored_errors(conn, ctx, cfg.name, settings.source_max_stored_errors)
    ctx.timed("resolve", t0)
    progress.phase("validate and resolve duplicates", outcome.incoming, time.perf_counter() - t0)

    read, bad = ctx.counts["rows_read"], ctx.counts["rows_bad"]
    if read and bad / read > settings.max_bad_share:
        reason = (f"{bad:,} of {read:,} rows ({bad / read:.1%}) are bad, above the limit of "
                  f"{settings.max_bad_share:.1%}; nothing was applied (see `fmw runs {run_id}`)")
        runs.finish_run(conn, run_id, "failed", counts=ctx.counts, source_stats=ctx.source_stats,
                        phase_seconds=ctx.phases, error_summary=reason)
        if plan.dry_run:
            conn.rollback()
        else:
            conn.commit()  # keeps the quarantined rows so admins can see why
        ctx.finished = True
        raise SyncFailed(run_id, reason)

    t0 = time.perf_counter()
    delta = apply_mod.diff(conn, plan)
    ctx.timed("diff", t0)
    progress.phase("diff", outcome.incoming, time.perf_counter() - t0)
    for name, counts in apply_mod.per_source_counts(conn).items():
        ctx.source_stats.setdefault(name, {}).update(counts)
    t0 = time.perf_counter()
    applied = apply_mod.apply(conn, run_id)
    ctx.timed("apply", t0)
    progress.phase("write changes and features", sum(delta.values()), time.perf_counter() - t0)
    ctx.counts.update(applied)
    ctx.counts["unchanged"] = outcome.incoming - applied["created"] - applied["updated"]
    problems.track(conn, run_id, [cfg.name for cfg in plan.sources])
    errors = ctx.counts["rows_bad"] + ctx.counts["conflicts"]
    status: RunStatus = "partial" if errors else "succeeded"
    runs.finish_run(conn, run_id, status, counts=ctx.counts, source_stats=ctx.source_stats,
                    phase_seconds=ctx.phases, error_summary=_not_stored_summary(ctx))
    if plan.dry_run:
        conn.rollback()
    else:
        conn.commit()
    return SyncResult(run_id=run_id, status=status, counts=dict(ctx.counts),
                      source_stats=ctx.source_stats, phase_seconds=ctx.phases,
                      dry_run=plan.dry_run)


def watch_client(conn: psycopg.Connection) -> bool:
    """Have the server end this run's statements if the client process dies (PostgreSQL 14+).

    PostgreSQL refuses the setting where the OS lacks POLLRDHUP (Windows); there a killed
    client's work is ended by the next run instead (`runs.fail_interrupted_runs`). Returns
    whether the server took it.
    """
    if conn.info.server_version < 140000 or server_on_windows(conn):
        return False  # asking anyway would log an ERROR in the server's log on every sync
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the run's transaction usable
            conn.execute("SET LOCAL client_connection_check_interval = '2s'")
    except psycopg.errors.InvalidParameterValue:
        return False
    return True


def server_on_windows(conn: psycopg.Connection) -> bool:
    """Whether the PostgreSQL server runs on Windows (its build names MSVC or MinGW)."""
    row = conn.execute("SELECT version()").fetchone()
    text = str(row[0]) if row else ""
    return any(mark in text for mark in ("Visual C++", "mingw", "Windows"))


def _refuse_empty_full_source(conn: psycopg.Connection, cfg: SourceConfig) -> None:
    """A full source that suddenly delivers nothing would delete all its rows: refuse that."""
    row = conn.execute("SELECT count(*) FROM features WHERE source = %s", (cfg.name,)).fetchone()
    stored = int(row[0]) if row else 0
    if stored:
        raise SourceError(cfg.name, f"delivered no valid rows; refusing to delete its {stored:,} "
                          "stored rows (set allow_empty = true on the source to allow this)",
                          location=cfg.location)


def _cap_stored_errors(conn: psycopg.Connection, ctx: _RunContext, source: str,
                       limit: int) -> None:
    """Keep the first `limit` quarantined rows of `source` in this run; count the rest."""
    cur = conn.execute(
        "DELETE FROM run_errors WHERE id IN (SELECT id FROM run_errors WHERE run_id = %s "
        "AND source = %s ORDER BY row_no NULLS FIRST, id OFFSET %s)", (ctx.run_id, source, limit))
    if cur.rowcount > 0:
        stats = ctx.source_stats.setdefault(source, {})
        stats["errors_not_stored"] = stats.get("errors_not_stored", 0) + cur.rowcount


def _not_stored_summary(ctx: _RunContext) -> str | None:
    """What the run record says when quarantined rows were counted but not stored."""
    parts = [f"{stats['errors_not_stored']:,} of source {name!r}"
             for name, stats in ctx.source_stats.items() if stats.get("errors_not_stored")]
    if not parts:
        return None
    return (f"quarantined rows not stored (above source_max_stored_errors): {', '.join(parts)}; "
            "they are counted in rows_bad")


@contextmanager
def _staging(cfg: SourceConfig) -> Iterator[None]:
    """Data PostgreSQL refuses while staging a source fails that source, named (a safety net:
    the readers already remove what PostgreSQL cannot store, such as NUL)."""
    try:
        yield
    except psycopg.DataError as exc:
        raise SourceError(cfg.name, f"rows could not be staged: {_reason(exc)}",
                          location=cfg.location) from exc


def _read(cfg: SourceConfig, limits: SourceLimits) -> SourceTable:
    """`read_source`, with any unexpected failure turned into an error naming source and file."""
    try:
        return read_source(cfg, limits)
    except FmwError:
        raise
    except Exception as exc:  # a reader bug or a library's surprise must still name the file
        raise SourceError(cfg.name, f"cannot be read: {type(exc).__name__}: {exc}",
                          location=cfg.location) from exc


def _stage_source(conn: psycopg.Connection, cfg: SourceConfig, rank: int, mapped: set[str],
                  tz: str, ctx: _RunContext, progress: Progress, limits: SourceLimits) -> None:
    """Read one source, COPY it into a raw temp table and normalise it into `stage`."""
    t0 = time.perf_counter()
    src = _read(cfg, limits)
    ctx.timed("read", t0)
    read_s = time.perf_counter() - t0
    progress.phase(f"read {cfg.name}", src.rows_read, read_s)
    t1 = time.perf_counter()
    raw = f"raw_{rank}"
    columns = src.table.column_names[1:]
    create_raw_table(conn, raw, columns)
    label = f"stage {cfg.name}"
    total = src.table.num_rows
    with _staging(cfg):
        copy_table(conn, raw, clean_strings(src.table), lambda n: progress.rows(label, n, total))
    for e in src.row_errors[:ctx.max_stored]:
        runs.record_run_error(conn, ctx.run_id, source=cfg.name, row=e.row, kind="invalid",
                              reason=e.reason, raw=e.raw)
    rows_read, reader_bad = src.rows_read, len(src.row_errors)
    del src  # free the Arrow table before the SQL work
    sql, params = stage_insert_sql(cfg, raw, columns, mapped & set(MAPPED_KINDS))
    params.update(src_rank=rank, source=cfg.name)
    # Source time stamps without an offset are local time in the configured zone.
    conn.execute("SELECT set_config('TimeZone', %s, true)", (tz,))
    with _staging(cfg):
        conn.execute(sql, params)
    conn.execute("SELECT set_config('TimeZone', 'UTC', true)")
    invalid = apply_mod.quarantine_invalid(conn, ctx.run_id, rank, raw)
    ctx.valid += total - invalid
    bad = invalid + reader_bad
    if cfg.mode == "full" and rows_read == bad and not cfg.allow_empty:
        _refuse_empty_full_source(conn, cfg)
    ctx.timed("stage", t1)
    stage_s = time.perf_counter() - t1
    progress.phase(label, total, stage_s)
    ctx.counts["rows_read"] = ctx.counts.get("rows_read", 0) + rows_read
    ctx.counts["rows_bad"] = ctx.counts.get("rows_bad", 0) + bad
    ctx.source_stats[cfg.name] = {
        "mode": cfg.mode, "rows_read": rows_read, "rows_bad": bad,
        "read_seconds": round(read_s, 3), "stage_seconds": round(stage_s, 3),
    }
    if reader_bad > ctx.max_stored:
        ctx.source_stats[cfg.name]["errors_not_stored"] = reader_bad - ctx.max_stored
