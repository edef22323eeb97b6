"""CLI for snapshots and analysts: `fmw snapshot`, `fmw snapshots`, `fmw sql`, `fmw catalog`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fmw import render
from fmw.settings import Settings


def register(sub: Any) -> None:
    s = sub.add_parser("snapshot", help="publish a snapshot of the ledger now")
    s.set_defaults(func=cmd_snapshot)

    s = sub.add_parser("snapshots", help="published snapshot versions")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_snapshots)

    s = sub.add_parser("sql", help="read-only DuckDB SQL over a snapshot (no query: a shell)")
    s.add_argument("query", nargs="?", help="one SELECT/WITH/DESCRIBE/SHOW statement")
    s.add_argument("--version", type=int, help="snapshot version (default: current)")
    s.add_argument("--limit", type=int, default=10_000, help="row limit (default 10000)")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.set_defaults(func=cmd_sql)

    s = sub.add_parser("catalog", help="write a DuckDB file with views over a snapshot")
    s.add_argument("path", type=Path)
    s.add_argument("--version", type=int, help="snapshot version (default: current)")
    s.set_defaults(func=cmd_catalog)


def cmd_snapshot(args: argparse.Namespace, settings: Settings) -> int:
    from lake.publish import publish_snapshot
    m = publish_snapshot(settings, None)
    render.out(f"published snapshot v{m.version:06d}: {m.tables['features'].rows:,} features in "
               f"{len(m.tables['features'].groups)} groups -> {settings.snapshots_path}")
    return 0


def cmd_snapshots(args: argparse.Namespace, settings: Settings) -> int:
    from query import Engine
    with Engine(settings) as engine:
        items = engine.versions()
    if args.json:
        print(json.dumps([i.__dict__ for i in items], default=str))
        return 0
    if not items:
        render.out(f"no snapshot in {settings.snapshots_path} yet: run `fmw sync` or `fmw snapshot`")
    for i in items:
        mark = "*" if i.current else " "
        render.out(f"{mark} {i.name}  {i.created_at}  run {i.run_id}  {i.rows:,} features")
    return 0


def _print_result(res: Any, fmt: str) -> None:
    rows = res.rows.to_pylist() if hasattr(res.rows, "to_pylist") else list(res.rows)
    if fmt == "json":
        print(json.dumps(rows, default=str, ensure_ascii=False))
        return
    if fmt == "csv":
        import csv
        w = csv.DictWriter(sys.stdout, fieldnames=list(res.columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    render.rows_table(list(res.columns), rows)
    note = " (truncated at the row limit)" if res.truncated else ""
    if res.over_bytes:
        note = " (stopped at the size limit; more rows exist)"
    render.out(f"{len(rows):,} rows from v{res.version:06d} in {res.elapsed_s:.3f} s{note}")


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from fmw.errors import FmwError
    from query import Engine
    with Engine(settings) as engine:
        if args.query:
            res = engine.sql(args.query, limit=args.limit, timeout_s=args.timeout,
                             version=args.version)
            _print_result(res, args.format)
            return 0
        render.out("FMW SQL over views features, changes, runs, daily_counts, name_map, "
                   "mcc_mnc_map. End a statement with ';'. Ctrl+D to leave.")
        buf: list[str] = []
        while True:
            try:
                line = input("fmw> " if not buf else "...> ")
            except EOFError:
                return 0
            buf.append(line)
            if not line.rstrip().endswith(";"):
                continue
            text = "\n".join(buf).rstrip().rstrip(";")
            buf = []
            try:
                _print_result(engine.sql(text, limit=args.limit, timeout_s=args.timeout,
                                         version=args.version), args.format)
            except FmwError as exc:
                render.error(str(exc))


def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from query import Engine
    with Engine(settings) as engine:
        path = engine.write_catalog(args.path, version=args.version)
    render.out(f"wrote {path}: open it with duckdb, DBeaver or Jupyter (views features, changes, "
               "runs, daily_counts, name_map, mcc_mnc_map)")
    return 0
