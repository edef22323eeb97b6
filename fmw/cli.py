"""The `fmw` command line: a thin front over the ledger's Python API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fmw import cli_api, cli_deploy, cli_lake, cli_ops, cli_ui, render
from fmw.console import is_console
from fmw.errors import FmwError
from fmw.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]
#: Commands of the other rooms, each module registering its own subcommands.
ROOM_COMMANDS = (cli_lake, cli_api, cli_ops, cli_deploy, cli_ui)


def _iso_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fmw", description="FMW: feature status across operators, "
                                "with an exact change history.")
    p.add_argument("--config", type=Path, help="config file (default: $FMW_CONFIG or ./fmw.toml)")
    p.add_argument("--data-dir", type=Path, help="state folder (default: data_dir setting, .fmw)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="write a commented fmw.toml to start from")
    s.add_argument("path", nargs="?", type=Path, default=Path("fmw.toml"))
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.set_defaults(func=cmd_init, needs_settings=False)

    db = sub.add_parser("db", help="the ledger database").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("upgrade", help="create or migrate the schema").set_defaults(func=cmd_db_upgrade)
    db.add_parser("url", help="print the connection URL (for psql, pg_dump)").set_defaults(func=cmd_db_url)
    db.add_parser("status", help="schema revision and row counts").set_defaults(func=cmd_db_status)
    db.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_db_stop)

    s = sub.add_parser("sync", help="read the sources and apply their changes to the ledger")
    s.add_argument("--source", action="append", metavar="NAME", help="only this source (repeatable)")
    s.add_argument("--dry-run", action="store_true", help="compute and report, then roll back")
    s.add_argument("--no-progress", action="store_true", help="no live progress display")
    s.add_argument("--no-snapshot", action="store_true", help="do not publish a snapshot after it")
    s.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_sync)

    s = sub.add_parser("runs", help="run history, or one run with its quarantined rows")
    s.add_argument("run_id", nargs="?", type=int)
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("changes", help="the change history (C/U/D)")
    s.add_argument("--since", type=_iso_datetime, help="ISO date/time, inclusive")
    s.add_argument("--until", type=_iso_datetime, help="ISO date/time, exclusive")
    s.add_argument("--run", type=int)
    s.add_argument("--group")
    s.add_argument("--identity", help="identity hash or a prefix of it")
    s.add_argument("--op", choices=["C", "U", "D"])
    s.add_argument("--limit", type=int, default=100)
    s.add_argument("--json", action="store_true", help="machine-readable output, with before/after")
    s.set_defaults(func=cmd_changes)

    nm = sub.add_parser("namemap", help="aliases -> canonical names").add_subparsers(
        dest="nm_cmd", required=True)
    s = nm.add_parser("import", help="import a CSV (kind, alias, canonical)")
    s.add_argument("file", type=Path)
    s.add_argument("--replace", action="store_true", help="drop all existing aliases first")
    s.set_defaults(func=cmd_namemap_import)
    s = nm.add_parser("export", help="export to CSV (UTF-8 with BOM)")
    s.add_argument("file", type=Path)
    s.set_defaults(func=cmd_namemap_export)

    mm = sub.add_parser("mccmnc", help="the MCC/MNC reference").add_subparsers(dest="mm_cmd", required=True)
    s = mm.add_parser("load", help="load the shipped list, or FILE (JSON list or CSV) as overrides")
    s.add_argument("file", nargs="?", type=Path)
    s.set_defaults(func=cmd_mccmnc_load)

    for room in ROOM_COMMANDS:
        room.register(sub)

    s = sub.add_parser("demo", help="generate sample sources, sync them twice and show the result")
    s.add_argument("--dir", type=Path, help="where to write the demo (default: <data_dir>/demo)")
    s.add_argument("--no-up", action="store_true",
                   help="do not start the API and explorer afterwards (default when not on a terminal)")
    s.set_defaults(func=cmd_demo)
    return p


def cmd_init(args: argparse.Namespace, _settings: Settings | None) -> int:
    target: Path = args.path
    if target.exists() and not args.force:
        raise FmwError(f"{target} exists; use --force to overwrite it")
    template = Path(__file__).parent / "templates" / "fmw.toml"
    target.write_text(template.read_text(encoding="utf-8"), encoding="utf-8", newline="\n")
    render.out(f"wrote {target}; edit its [[sources]], then run `fmw db upgrade` and `fmw sync`")
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.refdata import ensure_shipped_mcc_mnc
    from ledger.schema import upgrade
    before, after = upgrade(settings)
    render.out(f"schema {settings.schema!r}: {before or 'empty'} -> {after}"
               if before != after else f"schema {settings.schema!r} is up to date ({after})")
    with _ready(settings) as conn:
        shipped = ensure_shipped_mcc_mnc(conn)
    if shipped.loaded is not None:
        render.out(f"loaded the shipped MCC/MNC list: {shipped.loaded.rows:,} entries (country "
                   "and operator for every synced row; `fmw mccmnc load FILE` adds your own)")
    elif shipped.differs:
        render.out(f"a newer shipped MCC/MNC list is available ({shipped.differs:,} entries "
                   "differ from the stored one): run `fmw mccmnc load` to use it")
    return 0


def cmd_db_url(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.db import database_url
    print(database_url(settings))
    return 0


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.db import connection
    from ledger.schema import current_revision, head_revision, table_counts
    with connection(settings) as conn:
        rev = current_revision(conn, settings.schema)
        counts = table_counts(conn) if rev else {}
    render.db_status(settings, rev, head_revision(), counts)
    return 0


def cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.db import stop_embedded
    render.out("embedded PostgreSQL stopped" if stop_embedded(settings)
               else "no embedded PostgreSQL to stop")
    return 0


def _ready(settings: Settings) -> Any:
    from ledger.schema import connect_current
    return connect_current(settings, autocommit=False)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.sync import plan_sync
    from scheduler.jobs import sync_and_publish
    plan = plan_sync(settings, args.source, trigger=args.trigger, dry_run=args.dry_run)
    show = settings.progress and not args.no_progress and is_console(sys.stderr)
    with render.SyncProgress(enabled=show) as progress:
        job = sync_and_publish(settings, plan, progress, publish=not args.no_snapshot)
    render.sync_result(job.sync)
    render.snapshot_line(job)
    return 0 if job.snapshot_error is None else 6


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from ledger import runs
    with _ready(settings) as conn:
        if args.run_id is not None:
            run = runs.get_run(conn, args.run_id)
            if run is None:
                raise FmwError(f"no run {args.run_id}")
            errors = runs.run_errors(conn, args.run_id)
            if args.json:
                print(json.dumps({**run.as_json(), "errors": errors}, default=str, ensure_ascii=False))
            else:
                render.run_detail(run, errors)
            return 0
        items = runs.list_runs(conn, args.limit)
    if args.json:
        print(json.dumps([r.as_json() for r in items], ensure_ascii=False))
    else:
        render.runs_table(items)
    return 0


def cmd_changes(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.history import ChangeFilter, list_changes
    f = ChangeFilter(since=args.since, until=args.until, run_id=args.run, group=args.group,
                     identity=args.identity, op=args.op, limit=args.limit)
    with _ready(settings) as conn:
        rows = list_changes(conn, f)
    if args.json:
        print(json.dumps(rows, default=str, ensure_ascii=False))
    else:
        render.changes_table(rows)
    return 0


def cmd_namemap_import(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.refdata import import_name_map
    with _ready(settings) as conn:
        n = import_name_map(conn, args.file, replace=args.replace)
    render.out(f"imported {n} aliases from {args.file}")
    return 0


def cmd_namemap_export(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.refdata import export_name_map
    with _ready(settings) as conn:
        n = export_name_map(conn, args.file)
    render.out(f"exported {n} aliases to {args.file}")
    return 0


def cmd_mccmnc_load(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.refdata import load_mcc_mnc
    with _ready(settings) as conn:
        r = load_mcc_mnc(conn, args.file)
    render.out(f"loaded {r.rows:,} MCC/MNC entries from {r.source} (replaced {r.replaced:,}; "
               f"{r.dropped_duplicates} duplicate and {r.skipped} invalid entries skipped)")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from fmw.demo import run_demo
    return run_demo(settings, args.dir, up=not args.no_up)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = None
        if getattr(args, "needs_settings", True):
            settings = load_settings(args.config, args.data_dir)
        return int(args.func(args, settings))
    except FmwError as exc:
        render.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        render.error("interrupted")
        return 130
