"""CLI commands of operations: `fmw nginx render`, `fmw tls selfsigned`, `fmw backup` (list,
schedule), `fmw restore`, `fmw smoke` and `fmw status`.

`register(subparsers)` adds them to the `fmw` parser (see fmw/cli.py); each handler is a thin
front over the `ops` package.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from fmw import render
from fmw.errors import ConfigError, FmwError
from fmw.settings import Settings


def _hhmm(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time of day (HH:MM): {text!r}") from None


def register(subparsers: Any) -> None:
    """Add nginx, backup, restore, smoke and status to the `fmw` subparsers."""
    ng = subparsers.add_parser("nginx", help="the Nginx front").add_subparsers(
        dest="nginx_cmd", required=True)
    s = ng.add_parser("render", help="write the Nginx config from the allow list (checked with "
                      "nginx -t when nginx is found)")
    s.add_argument("--out", type=Path, help="file to write (default: nginx_conf, "
                   "deploy/nginx/fmw.conf)")
    s.add_argument("--reload", action="store_true", help="reload Nginx after a change "
                   "(default: the nginx_reload setting)")
    s.add_argument("--stdout", action="store_true", help="print the config instead of writing it")
    s.set_defaults(func=cmd_nginx_render)

    tl = subparsers.add_parser("tls", help="certificates for HTTPS in Nginx").add_subparsers(
        dest="tls_cmd", required=True)
    s = tl.add_parser("selfsigned", help="make a test CA and a server certificate it signs "
                      "(trust ca.pem on the clients)")
    s.add_argument("--out-dir", type=Path, help="folder for ca.pem, server.pem, server.key "
                   "(default: <data_dir>/tls)")
    s.add_argument("--host", action="append", metavar="NAME", help="a DNS name or IP address "
                   "the server is reached by; repeat for more (default: this machine's name, "
                   "localhost, 127.0.0.1)")
    s.add_argument("--days", type=int, default=365, help="validity in days (365)")
    s.add_argument("--force", action="store_true", help="replace existing files")
    s.set_defaults(func=cmd_tls_selfsigned)

    b = subparsers.add_parser("backup", help="back up the ledger and the current snapshot "
                              "(then apply retention)")
    b.add_argument("--tag", default="", help="appended to the backup's name, e.g. pre-deploy")
    b.add_argument("--no-retention", action="store_true", help="keep every older backup")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_backup)
    bs = b.add_subparsers(dest="backup_cmd", required=False, metavar="{list,schedule}")
    s = bs.add_parser("list", help="the backups kept, newest last")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_backup_list)
    s = bs.add_parser("schedule", help="write Windows Task Scheduler XML and register-tasks.cmd")
    s.add_argument("--out", type=Path, help="folder (default: deploy/windows/tasks next to the "
                   "config)")
    s.add_argument("--python", help="the venv's python.exe the tasks run as `python -m fmw` "
                   "(default: this one)")
    s.add_argument("--at", type=_hhmm, default=time(2, 30), help="nightly backup time (02:30)")
    s.add_argument("--verify-at", type=_hhmm, default=time(4, 0), help="weekly rehearsal (04:00)")
    s.add_argument("--verify-day", default="Sunday", help="weekly rehearsal day (Sunday)")
    s.add_argument("--user", default="SYSTEM", help="account the tasks run as (SYSTEM)")
    s.set_defaults(func=cmd_backup_schedule)

    s = subparsers.add_parser("restore", help="restore rehearsal (--verify) or real restore "
                              "(--replace) of a backup")
    s.add_argument("backup", nargs="?", help="backup name or folder (default: the newest)")
    mode = s.add_mutually_exclusive_group(required=True)
    mode.add_argument("--verify", action="store_true", help="restore into a scratch database "
                      "and compare row counts and checksums; the ledger is not touched")
    mode.add_argument("--replace", action="store_true", help="REPLACE the ledger schema with "
                      "the backup (stop the services first)")
    s.add_argument("--yes", action="store_true", help="confirm --replace")
    s.add_argument("--if-schema-changed", action="store_true", help="with --replace: only when "
                   "the schema revision differs from the backup's (deploy rollback)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_restore)

    s = subparsers.add_parser("smoke", help="check the running API: health, a v1 query, "
                              "snapshot age, the dev API with a key")
    s.add_argument("--url", help="API base URL (default: smoke_url, http://api_host:api_port)")
    s.add_argument("--key", help="dev API key (default: smoke_key_file, else a temporary key)")
    s.add_argument("--key-file", type=Path, help="file holding the dev API key")
    s.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for the API to answer (after a restart)")
    s.add_argument("--max-age-hours", type=float, help="snapshot age limit "
                   "(default: snapshot_max_age_hours, 26)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_smoke)

    s = subparsers.add_parser("status", help="one screen for the daily check: services, runs, "
                              "snapshot, SLA, disk, backups")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_status)
    dp = subparsers.add_parser("deploy", help="deploy records (deploy.ps1 writes them)"
                               ).add_subparsers(dest="deploy_cmd", required=True)
    s = dp.add_parser("record", help="record one deploy: version, start, outcome, rollback")
    s.add_argument("--version", required=True, help="the version deployed (e.g. the wheel's)")
    s.add_argument("--started", required=True, help="when the deploy started (ISO 8601)")
    s.add_argument("--outcome", required=True, choices=("succeeded", "failed"))
    s.add_argument("--rolled-back", action="store_true", help="the previous version is live")
    s.add_argument("--detail", help="what failed, for the record")
    s.set_defaults(func=cmd_deploy_record)
    s = subparsers.add_parser("digest", help="the daily digest (what `fmw status` shows) as one "
                              "message; --send posts it to sla_webhook_url")
    s.add_argument("--send", action="store_true", help="post it to the webhook")
    s.set_defaults(func=cmd_digest)


def cmd_nginx_render(args: argparse.Namespace, settings: Settings) -> int:
    from ops.config import ops_setting
    from ops.nginx import ProxyConfig
    from ops.nginx import render as render_conf
    from ops.nginx_run import load_entries, regenerate
    if args.stdout:
        print(render_conf(load_entries(settings), ProxyConfig.from_settings(settings),
                          schema=settings.schema), end="")
        return 0
    from ops.nginx_run import api_target_warnings
    up = regenerate(settings, out=args.out, reload_nginx=True if args.reload else None)
    state = "written" if up.changed else "unchanged"
    render.out(f"{up.path}: {state} ({up.entries} allow-list entries)")
    for warning in api_target_warnings(settings):
        render.out(f"warning: {warning}")
    if not up.checked:
        render.out(f"warning: {ops_setting(settings, 'nginx_exe')} not found, so the file was "
                   "not checked with nginx -t (set nginx_exe)")
    elif up.reloaded:
        render.out("nginx reloaded")
    elif up.changed:
        render.out("checked with nginx -t; reload Nginx to apply it (`fmw nginx render --reload`)")
    return 0


def cmd_tls_selfsigned(args: argparse.Namespace, settings: Settings) -> int:
    from ops.tls import make_selfsigned, toml_lines
    made = make_selfsigned(args.out_dir or settings.data_dir / "tls", args.host,
                           days=args.days, force=args.force)
    render.out(f"certificate for {', '.join(made.names)}, valid until "
               f"{made.not_after:%Y-%m-%d}")
    render.out(f"  CA certificate (clients trust this): {made.ca_cert}")
    render.out(f"  server certificate:                  {made.server_cert}")
    render.out(f"  server key (keep it private):        {made.server_key}")
    render.out("set in fmw.toml, then run `fmw nginx render --reload`:")
    for line in toml_lines(made):
        render.out(f"  {line}")
    return 0


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from ops.backup import apply_retention, create_backup
    b = create_backup(settings, tag=args.tag)
    removed: tuple[str, ...] = ()
    if not args.no_retention:
        removed = apply_retention(settings).remove
    if args.json:
        print(json.dumps({"name": b.name, "path": str(b.path), "rows": b.rows,
                          "dump_bytes": b.dump_bytes, "revision": b.revision,
                          "snapshot_version": b.snapshot_version, "removed": list(removed)}))
        return 0
    snap = f"snapshot v{b.snapshot_version:06d}" if b.snapshot_version is not None \
        else f"no snapshot ({b.snapshot_note})"
    render.out(f"backup {b.name}: {len(b.tables)} tables, {b.rows:,} rows, dump "
               f"{b.dump_bytes / 2**20:,.1f} MiB, {snap}")
    render.out(f"  in {b.path}")
    for name in removed:
        render.out(f"  removed old backup {name} (retention)")
    return 0


def cmd_backup_list(args: argparse.Namespace, settings: Settings) -> int:
    from ops.backup import list_backups
    from ops.config import backup_root
    found = list_backups(backup_root(settings))
    if args.json:
        print(json.dumps([{"name": b.name, "created_at": b.created_at.isoformat(), "tag": b.tag,
                           "rows": b.rows, "dump_bytes": b.dump_bytes,
                           "snapshot_version": b.snapshot_version,
                           "verified": b.verified} for b in found]))
        return 0
    if not found:
        render.out(f"no backups in {backup_root(settings)}; run `fmw backup`")
    for b in found:
        v = b.verified
        checked = "never restore-tested" if v is None else (
            f"rehearsal {'passed' if v.get('ok') else 'FAILED'} {v.get('at')}")
        render.out(f"{b.name:<36} {b.rows:>12,} rows {b.dump_bytes / 2**20:>9,.1f} MiB  "
                   f"snapshot {b.snapshot_version or '-'}  {checked}")
    return 0


def cmd_backup_schedule(args: argparse.Namespace, settings: Settings) -> int:
    from ops.config import base_dir
    from ops.schtasks import default_tasks, register_script, task_xml, xml_file_name
    out: Path = args.out or base_dir(settings) / "deploy" / "windows" / "tasks"
    exe = args.python or sys.executable
    config = str(settings.config_path) if settings.config_path else None
    tasks = default_tasks(exe, config, str(base_dir(settings)), backup_at=args.at,
                          verify_at=args.verify_at, verify_day=args.verify_day.capitalize(),
                          user=args.user)
    out.mkdir(parents=True, exist_ok=True)
    for t in tasks:
        (out / xml_file_name(t)).write_text(task_xml(t), encoding="utf-16", newline="\r\n")
        render.out(f"wrote {out / xml_file_name(t)}")
    (out / "register-tasks.cmd").write_bytes(register_script(tasks).encode("ascii", "replace"))
    render.out(f"wrote {out / 'register-tasks.cmd'}: run it as Administrator to register "
               + ", ".join(t.name for t in tasks))
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from ops.backup import find_backup
    from ops.rehearse import restore_backup, verify_backup
    b = find_backup(settings, args.backup)
    if args.verify:
        r = verify_backup(settings, b)
        if args.json:
            print(json.dumps(r.as_json()))
            return 0 if r.ok else 1
        for t in r.tables:
            mark = "ok  " if t.ok else "FAIL"
            got = "missing" if t.rows_restored is None else f"{t.rows_restored:,}"
            render.out(f"  {mark} {t.table:<20} rows {t.rows_expected:>12,} -> {got:>12}  "
                       f"checksum {'ok' if t.checksum_ok else 'DIFFERS'}")
        for p in r.snapshot_problems:
            render.error(f"snapshot copy: {p}")
        if r.ok:
            render.out(f"restore rehearsal of {b.name} passed: {len(r.tables)} tables match "
                       f"({r.seconds:.1f} s); scratch database dropped")
            return 0
        render.error(f"restore rehearsal of {b.name} FAILED")
        return 1
    if not args.yes:
        raise ConfigError("--replace overwrites the ledger: add --yes (and stop the services)")
    if args.if_schema_changed:
        from ledger.dump import live_revision
        live = live_revision(settings)
        if live == b.revision:
            render.out(f"schema revision {live} is the backup's: nothing restored")
            return 0
        render.out(f"schema revision {live} differs from the backup's {b.revision}: restoring")
    done = restore_backup(settings, b)
    render.out(f"ledger schema {done.schema!r} replaced from {done.backup}"
               + (f"; snapshot v{done.snapshot_version:06d} copied back" if done.snapshot_copied
                  else ""))
    return 0


def cmd_smoke(args: argparse.Namespace, settings: Settings) -> int:
    from ops.config import ops_path, with_values
    from ops.smoke import smoke
    key = args.key
    key_file = args.key_file or ops_path(settings, "smoke_key_file")
    if not key and key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise FmwError(f"cannot read the key file {key_file}: {exc}") from exc
    if args.max_age_hours is not None:
        settings = with_values(settings, snapshot_max_age_hours=args.max_age_hours)
    report = smoke(settings, url=args.url, key=key, wait_s=args.wait)
    _record_smoke(settings, report)
    if args.json:
        print(json.dumps({"url": report.url, "ok": report.ok, "checks": [
            {"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]}))
    else:
        render.out(f"smoke test of {report.url}")
        for c in report.checks:
            render.out(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<14} {c.detail}")
        render.out("smoke test PASSED" if report.ok else "smoke test FAILED")
    return 0 if report.ok else 1


def _record_smoke(settings: Settings, report: Any) -> None:
    """Keep the result in the ledger for `fmw status` (best effort: a smoke test of a broken
    installation must still report)."""
    from ledger.db import connect
    from ledger.deploys import record_smoke
    failed = ", ".join(c.name for c in report.checks if not c.ok) or None
    try:
        with connect(settings, autocommit=True, application_name="fmw-smoke") as conn:
            record_smoke(conn, report.url, report.ok, failed)
    except Exception as exc:  # noqa: BLE001 - the database may be what is broken
        render.out(f"note: the smoke result was not recorded in the ledger ({exc})")


def cmd_deploy_record(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.db import connect
    from ledger.deploys import record_deploy
    started = datetime.fromisoformat(args.started.replace("Z", "+00:00"))
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    with connect(settings, autocommit=True, application_name="fmw-deploy") as conn:
        n = record_deploy(conn, args.version, started, args.outcome, args.rolled_back,
                          args.detail)
    render.out(f"deploy {n} recorded: {args.version} {args.outcome}"
               + (" (rolled back)" if args.rolled_back else ""))
    return 0


def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    from ops.digest import compose, send
    body = send(settings) if args.send else compose(settings)
    render.out(body["text"])
    if args.send:
        render.out("sent to sla_webhook_url")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from ops.status import assess, gather, limits_from
    lines = assess(gather(settings), limits_from(settings))
    worst = "fail" if any(ln.level == "fail" for ln in lines) else (
        "warn" if any(ln.level == "warn" for ln in lines) else "ok")
    if args.json:
        print(json.dumps({"status": worst, "lines": [ln.__dict__ for ln in lines]}))
        return 1 if worst == "fail" else 0
    section = None
    for ln in lines:
        if ln.section != section:
            section = ln.section
            render.out(f"{section}:")
        render.out(f"  {ln.level.upper():<4}  {ln.text}")
    render.out(f"overall: {worst.upper()}")
    return 1 if worst == "fail" else 0
