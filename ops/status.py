"""`fmw status`: one screen for the admin's daily check.

`gather` collects facts (network probes of the API, the explorer and Nginx; the scheduler's
lock; the last runs; the snapshot; open SLA violations; free disk space; backups); `assess`
turns them into OK / WARN / FAIL lines and is a pure function, tested on its own.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fmw.errors import FmwError
from fmw.settings import Settings
from lake.health import snapshot_health
from lake.layout import Layout, version_name
from lake.manifest import load_manifest
from ops.backup import list_backups
from ops.config import api_base_url, backup_copy_root, backup_root, ops_setting
from ops.smoke import fetch

Level = Literal["ok", "warn", "fail"]
#: Backups run daily; a day and two hours leaves room for a slow night.
BACKUP_MAX_AGE = timedelta(hours=26)
#: The rehearsal runs weekly; a day of slack.
REHEARSAL_MAX_AGE = timedelta(days=8)


@dataclass(frozen=True)
class Line:
    section: str
    level: Level
    text: str


@dataclass(frozen=True)
class Probe:
    name: str
    up: bool
    detail: str
    required: bool = True  # the explorer is optional until it is installed


@dataclass(frozen=True)
class RunFact:
    id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    created: int
    updated: int
    deleted: int
    error: str | None


@dataclass(frozen=True)
class Disk:
    label: str
    path: Path
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class Facts:
    now: datetime
    probes: tuple[Probe, ...]
    runs: tuple[RunFact, ...] | None  # None: the database is unavailable
    database_error: str | None
    scheduler: dict[str, Any] | None  # who holds the scheduler lock; None: nobody
    scheduler_known: bool  # False: this FMW has no scheduler yet (or the query failed)
    snapshot_version: int | None
    snapshot_created: datetime | None
    snapshot_problems: tuple[str, ...]
    sla_open: tuple[str, ...] | None  # None: SLA checks not available
    disks: tuple[Disk, ...]
    backup_count: int
    backup_latest: datetime | None
    backup_latest_name: str | None
    backup_verified: dict[str, Any] | None  # the latest restore rehearsal of any kept backup
    next_fire: datetime | None = None  # the next scheduled sync
    backup_dir: Path | None = None
    backup_copy_dir: Path | None = None  # None: backup_copy_dir is not configured
    backup_copy_names: tuple[str, ...] = ()  # complete backups found in the copy folder
    backup_copy_same_disk: bool = False
    #: (window, v1 requests, worst v1 p95 ms) from the ledger; None: not available
    latency: tuple[tuple[str, int, float], ...] | None = None
    problems: Any = None  # ledger.problems.ProblemSummary; None: not available
    incidents: Any = None  # ledger.incidents.MonthIncidents; None: not available
    deploys: Any = None  # (last deploy, last smoke) as dicts; None: not available


@dataclass(frozen=True)
class Limits:
    snapshot_max_age: timedelta
    disk_min_free_bytes: int
    backup_max_age: timedelta = BACKUP_MAX_AGE
    rehearsal_max_age: timedelta = REHEARSAL_MAX_AGE


#: The KPI "Sev-2 at most 1 per month".
INCIDENTS_PER_MONTH = 1
#: The KPI "v1 p95 < 3 s" (the api_p95 SLA alerts on it; status shows it).
LATENCY_TARGET_MS = 3000.0

_RUN_LEVEL: dict[str, Level] = {"succeeded": "ok", "partial": "warn", "running": "ok",
                                "skipped": "ok"}


def _age(now: datetime, then: datetime) -> str:
    s = max((now - then).total_seconds(), 0)
    if s < 3600:
        return f"{s / 60:.0f} min ago"
    if s < 172_800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} days ago"


def assess(f: Facts, limits: Limits) -> list[Line]:
    """The status lines for `f`: every section says OK, WARN or FAIL with the reason."""
    out: list[Line] = []
    for p in f.probes:
        lvl: Level = "ok" if p.up else ("fail" if p.required else "warn")
        out.append(Line("services", lvl, f"{p.name}: {p.detail}"))
    if f.scheduler_known:
        nxt = f"; next sync {f.next_fire.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if f.next_fire else ""
        if f.scheduler:
            out.append(Line("services", "ok", "scheduler: running "
                            f"({f.scheduler.get('application_name')}, since "
                            f"{f.scheduler.get('since')}){nxt}"))
        else:
            out.append(Line("services", "fail", "scheduler: not running (no process holds the "
                            "scheduler lock): scheduled syncs and SLA checks are not happening"))
    if f.runs is None:
        out.append(Line("runs", "fail", f"database unavailable: {f.database_error}"))
    elif not f.runs:
        out.append(Line("runs", "warn", "no sync has run yet"))
    else:
        last = f.runs[0]
        lvl = _RUN_LEVEL.get(last.status, "fail")
        text = (f"last run {last.id} {last.status} {_age(f.now, last.started_at)} (created "
                f"{last.created:,}, updated {last.updated:,}, deleted {last.deleted:,})")
        if last.error and last.status not in ("succeeded", "running"):
            text += f": {last.error}"
        out.append(Line("runs", lvl, text))
        recent = " ".join(f"{r.id}:{r.status}" for r in f.runs[1:])
        if recent:
            out.append(Line("runs", "ok", f"before that: {recent}"))
    if f.snapshot_version is None:
        out.append(Line("snapshot", "fail", "no usable snapshot" + (
            f": {'; '.join(f.snapshot_problems)}" if f.snapshot_problems else " published yet")))
    else:
        old = f.snapshot_created is not None and f.now - f.snapshot_created > limits.snapshot_max_age
        created = _age(f.now, f.snapshot_created) if f.snapshot_created else "at an unknown time"
        text = f"{version_name(f.snapshot_version)} created {created}"
        if old:
            text += f" (older than {limits.snapshot_max_age.total_seconds() / 3600:g} h)"
        out.append(Line("snapshot", "warn" if old or f.snapshot_problems else "ok", text))
        out += [Line("snapshot", "warn", problem) for problem in f.snapshot_problems]
    if f.problems is not None:
        p = f.problems
        text = (f"{p.open:,} bad rows open ({p.new_since:,} new today, {p.fixed_since:,} fixed "
                "today)")
        if p.oldest:
            o = p.oldest[0]
            text += (f"; oldest: source {o['source']!r}, {o['reason']} (since run "
                     f"{o['first_run_id']}, {_age(f.now, o['first_seen_at'])})")
        out.append(Line("data", "warn" if p.open else "ok", text))
    if f.deploys is not None:
        dep, smk = f.deploys
        if dep is None:
            out.append(Line("deploys", "ok", "no deploy recorded yet"))
        else:
            took = (dep["finished_at"] - dep["started_at"]).total_seconds()
            bad = dep["outcome"] != "succeeded"
            out.append(Line("deploys", "warn" if bad else "ok", f"last deploy {dep['version']} "
                            f"{dep['outcome']}{' and rolled back' if dep['rolled_back'] else ''} "
                            f"{_age(f.now, dep['finished_at'])} ({took:.0f} s, {dep['host']})"))
        if smk is not None:
            out.append(Line("deploys", "ok" if smk["ok"] else "fail", f"last smoke test "
                            f"{'passed' if smk['ok'] else 'FAILED (' + str(smk['failed']) + ')'}"
                            f" {_age(f.now, smk['at'])} ({smk['url']})"))
    if f.incidents is not None:
        i = f.incidents
        down = f"{int(i.downtime_s // 3600)} h {int(i.downtime_s % 3600 // 60)} min"
        ilvl: Level = "fail" if i.open else ("warn" if i.count > INCIDENTS_PER_MONTH else "ok")
        out.append(Line("incidents", ilvl, f"{i.count} this month (target at most "
                        f"{INCIDENTS_PER_MONTH}), {down} in all"))
        out += [Line("incidents", "fail", f"open since {_age(f.now, o['opened_at'])}: "
                     f"{o['kind']} - {o['detail']}") for o in i.open]
    for label, requests, p95_ms in f.latency or ():
        if requests:
            slow = p95_ms > LATENCY_TARGET_MS
            bound = "over 30 s" if p95_ms == float("inf") else f"at most {p95_ms / 1000:g} s"
            out.append(Line("api", "warn" if slow else "ok", f"v1 p95 {bound} over the last "
                            f"{label} ({requests:,} requests, every API process)"))
        else:
            out.append(Line("api", "ok", f"no v1 requests in the last {label}"))
    if f.sla_open is None:
        out.append(Line("sla", "warn", "SLA checks are not available in this installation"))
    elif not f.sla_open:
        out.append(Line("sla", "ok", "no open violations"))
    else:
        out += [Line("sla", "fail", v) for v in f.sla_open]
    for d in f.disks:
        share = d.free_bytes / d.total_bytes if d.total_bytes else 0.0
        low = d.free_bytes < limits.disk_min_free_bytes
        out.append(Line("disk", "warn" if low else "ok", f"{d.label} ({d.path}): "
                        f"{d.free_bytes / 2**30:,.1f} GiB free ({share:.0%})"))
    if f.backup_latest is None:
        out.append(Line("backups", "fail", "no backups yet: run `fmw backup` (and schedule it: "
                        "`fmw backup schedule`)"))
    else:
        stale = f.now - f.backup_latest > limits.backup_max_age
        out.append(Line("backups", "warn" if stale else "ok",
                        f"{f.backup_count} kept, newest {f.backup_latest_name} "
                        f"{_age(f.now, f.backup_latest)}"))
        out.append(_rehearsal(f, limits))
        out.append(_copy(f))
    return out


def _copy(f: Facts) -> Line:
    """Whether the backups also live somewhere other than the disk they protect."""
    if f.backup_copy_dir is None:
        return Line("backups", "warn", f"every backup is on the data disk ({f.backup_dir}): set "
                    "backup_copy_dir to another disk or a network share")
    if f.backup_copy_same_disk:
        return Line("backups", "warn", f"backup_copy_dir ({f.backup_copy_dir}) is on the same "
                    "disk as the data: a disk failure takes both")
    if f.backup_latest_name not in f.backup_copy_names:
        return Line("backups", "warn", f"the newest backup {f.backup_latest_name} has no copy in "
                    f"{f.backup_copy_dir} (see the backup task's log)")
    return Line("backups", "ok", f"copied to {f.backup_copy_dir} ({len(f.backup_copy_names)} "
                "there)")


def _same_disk(a: Path, b: Path) -> bool:
    def dev(p: Path) -> int | None:
        while not p.exists() and p.parent != p:
            p = p.parent
        try:
            return p.stat().st_dev
        except OSError:
            return None
    da, db = dev(a), dev(b)
    return da is not None and da == db


def _rehearsal(f: Facts, limits: Limits) -> Line:
    v = f.backup_verified
    if v is None:
        return Line("backups", "warn", "no restore rehearsal yet: `fmw restore --verify` (weekly "
                    "with `fmw backup schedule`)")
    try:
        at: datetime | None = datetime.fromisoformat(str(v.get("at")))
    except ValueError:
        at = None
    when = _age(f.now, at) if at else "at an unknown time"
    if not v.get("ok"):
        return Line("backups", "fail", f"the last restore rehearsal FAILED {when} (backup "
                    f"{v.get('backup')}): `fmw restore {v.get('backup')} --verify` shows why")
    old = at is None or f.now - at > limits.rehearsal_max_age
    return Line("backups", "warn" if old else "ok",
                f"restore rehearsal passed {when} (backup {v.get('backup')})")


def _tcp(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when something accepts connections on host:port, else the reason."""
    if host in ("0.0.0.0", "*", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc)


def probe_services(settings: Settings) -> tuple[Probe, ...]:
    base = api_base_url(settings)
    r = fetch(f"{base}/api/v1/features?format=json&limit=1", None, 5.0)
    api = Probe("api", r.status != 0, f"{base} answers (HTTP {r.status})" if r.status
                else r.error)
    ui_host, ui_port = str(ops_setting(settings, "ui_host")), int(ops_setting(settings, "ui_port"))
    why = _tcp(ui_host, ui_port)
    ui = Probe("explorer", why is None, f"{ui_host}:{ui_port} " + (
        "accepts connections" if why is None else f"not reachable: {why}"), required=False)
    n_host = str(ops_setting(settings, "nginx_listen"))
    n_port = int(ops_setting(settings, "nginx_port"))
    why = _tcp(n_host, n_port)
    nginx = Probe("nginx", why is None, f"{n_host}:{n_port} " + (
        "accepts connections" if why is None else f"not reachable: {why}"))
    return (api, ui, nginx)


def _ledger_facts(settings: Settings) -> dict[str, Any]:
    from ledger.access import session
    from ledger.runs import list_runs
    out: dict[str, Any] = {"runs": None, "database_error": None, "scheduler": None,
                           "scheduler_known": False, "next_fire": None, "sla_open": None}
    try:
        with session(settings, application_name="fmw-status") as conn:
            out["runs"] = tuple(RunFact(r.id, r.status, r.started_at, r.finished_at, r.created,
                                        r.updated, r.deleted, r.error_summary)
                                for r in list_runs(conn, 5))
            out.update(_optional(conn, settings))
            out["latency"] = _latency(conn)
            out["problems"] = _problems(conn, settings)
            out["incidents"] = _incidents(conn, settings)
            out["deploys"] = _deploys(conn)
    except FmwError as exc:
        out["database_error"] = str(exc)
    return out


def _problems(conn: Any, settings: Settings) -> Any:
    """Bad rows as open items (ledger.problems), "today" in the configured time zone."""
    from zoneinfo import ZoneInfo

    from ledger import problems
    start = datetime.now(ZoneInfo(settings.timezone)).replace(hour=0, minute=0, second=0,
                                                              microsecond=0)
    try:
        with conn.transaction():
            return problems.summary(conn, start, oldest=3)
    except Exception:  # noqa: BLE001 - an older schema: not shown
        return None


def _deploys(conn: Any) -> Any:
    from ledger import deploys
    try:
        with conn.transaction():
            return deploys.last(conn)
    except Exception:  # noqa: BLE001 - an older schema: not shown
        return None


def _incidents(conn: Any, settings: Settings) -> Any:
    from ledger import incidents
    try:
        with conn.transaction():
            return incidents.this_month(conn, settings.timezone)
    except Exception:  # noqa: BLE001 - an older schema: not shown
        return None


def _latency(conn: Any) -> tuple[tuple[str, int, float], ...] | None:
    """(window, requests, worst v1 route's p95 in ms) for the last 24 h and 30 days."""
    from ledger import latency
    try:
        with conn.transaction():
            found = []
            for label, since in (("24 h", timedelta(hours=24)), ("30 days", timedelta(days=30))):
                rows = latency.window(conn, since, "/api/v1")
                found.append((label, sum(r.requests for r in rows),
                              max((r.p95_ms for r in rows), default=0.0)))
            return tuple(found)
    except Exception:  # noqa: BLE001 - an older schema: not shown
        return None


def _optional(conn: Any, settings: Settings) -> dict[str, Any]:
    """The schedule and open SLA violations, from the scheduler's room when installed."""
    try:
        from scheduler.status import ops_status
    except ImportError:
        return {}
    try:
        with conn.transaction():  # a missing table must not spoil the connection
            st = ops_status(settings, conn)
    except Exception:  # noqa: BLE001 - an older schema or config: shown as not available
        return {}
    return {"scheduler": st.scheduler_holder, "scheduler_known": True, "next_fire": st.next_fire,
            "sla_open": tuple(f"{v.sla_name}: {v.detail} (open since "
                              f"{v.opened_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
                              for v in st.open_violations)}


def _snapshot(settings: Settings) -> tuple[int | None, datetime | None, tuple[str, ...]]:
    layout = Layout(settings.snapshots_path)
    h = snapshot_health(layout)
    created = None
    if h.serving is not None:
        try:
            created = datetime.fromisoformat(load_manifest(layout.version_dir(h.serving)).created_at)
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
        except (FmwError, ValueError):
            created = None
    return h.serving, created, h.problems


def _disks(settings: Settings) -> tuple[Disk, ...]:
    seen: set[int] = set()
    out = []
    for label, path in (("data", settings.data_dir), ("snapshots", settings.snapshots_path),
                        ("backups", backup_root(settings))):
        p = path
        while not p.exists() and p.parent != p:
            p = p.parent
        try:
            dev = p.stat().st_dev
            usage = shutil.disk_usage(p)
        except OSError:
            continue
        if dev in seen:
            continue
        seen.add(dev)
        out.append(Disk(label, path, usage.free, usage.total))
    return tuple(out)


def gather(settings: Settings, now: datetime | None = None) -> Facts:
    """Collect every fact `assess` needs (never raises for a service that is down)."""
    led = _ledger_facts(settings)
    version, created, problems = _snapshot(settings)
    backups = list_backups(backup_root(settings))
    newest = backups[-1] if backups else None
    copy_root = backup_copy_root(settings)
    return Facts(
        now=now or datetime.now(UTC), probes=probe_services(settings), runs=led["runs"],
        database_error=led["database_error"], scheduler=led["scheduler"],
        scheduler_known=led["scheduler_known"], snapshot_version=version,
        snapshot_created=created, snapshot_problems=problems, sla_open=led["sla_open"],
        disks=_disks(settings), backup_count=len(backups),
        backup_latest=newest.created_at if newest else None,
        backup_latest_name=newest.name if newest else None,
        backup_verified=max((b.verified for b in backups if b.verified),
                            key=lambda v: str(v.get("at")), default=None),
        next_fire=led["next_fire"], backup_dir=backup_root(settings),
        latency=led.get("latency"), problems=led.get("problems"),
        incidents=led.get("incidents"), deploys=led.get("deploys"),
        backup_copy_dir=copy_root,
        backup_copy_names=tuple(b.name for b in list_backups(copy_root)) if copy_root else (),
        backup_copy_same_disk=copy_root is not None and _same_disk(copy_root, settings.data_dir),
    )


def limits_from(settings: Settings) -> Limits:
    return Limits(
        snapshot_max_age=timedelta(hours=float(ops_setting(settings, "snapshot_max_age_hours"))),
        disk_min_free_bytes=int(float(ops_setting(settings, "disk_min_free_gb")) * 2**30))
