"""CLI commands of operations: `fmw service run|install|remove|start|stop|status` and
`fmw sla list|set|check|violations`.

`register(subparsers)` adds them to the `fmw` parser (see fmw/cli.py); each handler is a thin
front over `scheduler.host`, `scheduler.winservice`, `scheduler.install`, `ops.nginx_host`,
`scheduler.sla` and `ledger.sla`.
Until fmw/cli.py registers them, `python -m fmw.cli_ops …` runs the same commands.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any

from fmw import render
from fmw.errors import ConfigError, FmwError
from fmw.logs import log_to_console
from fmw.settings import Settings, load_settings


def register(subparsers: Any) -> None:
    """Add `service` and `sla` to the `fmw` subparsers."""
    sv = subparsers.add_parser("service", help="the service host (API + scheduler, or the UI) "
                               "and its Windows/systemd services").add_subparsers(
        dest="service_cmd", required=True)
    s = sv.add_parser("run", help="run the API and the scheduler until stopped (SIGTERM/Ctrl+C)")
    host = s.add_mutually_exclusive_group()
    host.add_argument("--ui", action="store_true", help="run the Streamlit UI instead")
    host.add_argument("--nginx", action="store_true", help="run nginx (nginx_exe) in the "
                      "foreground instead, stopping it with `nginx -s quit`")
    s.add_argument("--host", help="address (default: api_host / ui_host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default: api_port 8000 / ui_port 8501; "
                   "0 = any free port)")
    s.add_argument("--no-scheduler", action="store_true", help="serve the API only")
    s.add_argument("--stop-grace", type=float, metavar="S", help="seconds a running sync may "
                   "take to finish on stop before it is cancelled (default: service_stop_grace_s)")
    s.add_argument("--as-service", metavar="NAME", help="run as the Windows service NAME (the "
                   "command line `fmw service install` registers; the service manager starts it)")
    s.add_argument("--log-dir", type=Path, help="with --as-service: where NAME.log goes "
                   "(default: <data_dir>/logs)")
    s.set_defaults(func=cmd_service_run)
    for action, text in (("install", "register fmw-api, fmw-ui and fmw-nginx as services "
                                     "(Windows: sc.exe or WinSW; Linux: writes systemd units)"),
                         ("remove", "stop and unregister the services (Windows)"),
                         ("start", "start the services (Windows)"),
                         ("stop", "stop the services (Windows)"),
                         ("status", "the services, the schedule and open SLA violations")):
        s = sv.add_parser(action, help=text)
        s.add_argument("--no-ui", action="store_true", help="without fmw-ui")
        s.add_argument("--no-nginx", action="store_true", help="without fmw-nginx (otherwise "
                       "included on Windows when nginx_exe is found)")
        s.add_argument("--service-dir", type=Path,
                       help="where WinSW's files live (default: <data_dir>/service)")
        s.add_argument("--backend", choices=("native", "winsw"), help="Windows: FMW as the "
                       "service program, registered with sc.exe (install's default), or WinSW "
                       "(default for the other actions: what install left in --service-dir)")
        s.add_argument("--platform", choices=("windows", "linux"), help="whose plan to make "
                       "(default: this machine's; another one's can only be --print'ed)")
        s.add_argument("--print", dest="print_only", action="store_true",
                       help="print the files and commands, change nothing")
        if action == "install":
            s.add_argument("--winsw", type=Path, help="WinSW executable to copy (implies "
                           "--backend winsw)")
            s.add_argument("--python", help="the Python the services run (default: this one; "
                           "give the stable venv path when venvs are switched by a junction)")
            s.add_argument("--workdir", help="the services' working directory (default: here)")
            s.add_argument("--log-dir", type=Path, help="log folder (default: <data_dir>/logs)")
            s.add_argument("--account", default=None,
                           help=r"service account (default: NT AUTHORITY\LocalService; Linux: "
                           "the unit's User=, default fmw)")
        if action == "status":
            s.add_argument("--json", action="store_true", help="machine-readable output")
        s.set_defaults(func=cmd_service_manage, action=action)

    sl = subparsers.add_parser("sla", help="SLA definitions and violations").add_subparsers(
        dest="sla_cmd", required=True)
    s = sl.add_parser("list", help="the SLA definitions")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_sla_list)
    s = sl.add_parser("set", help="change an SLA (takes effect at the next check, no restart)")
    s.add_argument("name")
    s.add_argument("--threshold", type=float, help="hours (freshness), share 0..1 "
                   "(success_rate), seconds (api_p95)")
    s.add_argument("--deadline", type=_hhmm, help="HH:MM local time (daily_deadline)")
    s.add_argument("--window-days", type=int, help="days (success_rate)")
    s.add_argument("--min-samples", type=int, help="requests per route before p95 counts")
    s.add_argument("--description")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--enable", dest="enabled", action="store_true", default=None)
    g.add_argument("--disable", dest="enabled", action="store_false")
    s.set_defaults(func=cmd_sla_set)
    s = sl.add_parser("check", help="evaluate every SLA now (opens/closes violations, alerts)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_sla_check)
    s = sl.add_parser("violations", help="open violations (--all: recent ones too)")
    s.add_argument("--all", action="store_true")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_sla_violations)


def _hhmm(text: str) -> time:
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time HH:MM: {text!r}") from None


def _logging() -> None:
    log_to_console()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _ops_config(args: argparse.Namespace, settings: Settings) -> Any:
    from scheduler.config import OpsConfig
    config = OpsConfig.from_settings(settings)
    if args.stop_grace is not None:
        if args.stop_grace < 0:
            raise ConfigError("--stop-grace must be at least 0")
        config = config.with_(stop_grace_s=args.stop_grace)
    return config


def _hosted(args: argparse.Namespace, settings: Settings, config: Any
            ) -> Callable[[threading.Event, Callable[[], None]], int]:
    """The host `fmw service run` would run, built (and imported) only when it is called, on
    the service's own thread, after the service has reached the service manager."""
    def run(stop: threading.Event, ready: Callable[[], None]) -> int:
        if args.nginx:
            from ops.nginx_host import nginx_hosted
            return nginx_hosted(settings)(stop, ready)
        from scheduler.host import api_hosted, ui_hosted
        if args.ui:
            return ui_hosted(settings, args.host, args.port)(stop, ready)
        return api_hosted(settings, config, host=args.host, port=args.port,
                          with_scheduler=not args.no_scheduler)(stop, ready)
    return run


def cmd_service_run(args: argparse.Namespace, settings: Settings) -> int:
    config = _ops_config(args, settings)
    if args.as_service:
        from scheduler.install import ServiceRole, stop_timeout_s
        from scheduler.winservice import dispatch
        role: ServiceRole = "ui" if args.ui else "nginx" if args.nginx else "api"
        log_dir = args.log_dir or settings.data_dir / "logs"
        return dispatch(args.as_service, _hosted(args, settings, config),
                        stop_hint_s=stop_timeout_s(role, config.stop_grace_s),
                        log_file=log_dir / f"{args.as_service}.log")
    _logging()
    if args.ui:
        from scheduler.host import run_ui
        return run_ui(settings, args.host, args.port)
    from scheduler.host import ServiceHost, install_stop_handlers
    if args.nginx:
        from ops.nginx_host import serve_nginx
        stop = threading.Event()
        install_stop_handlers(stop)
        return serve_nginx(settings, stop, lambda: render.out(
            "FMW nginx running; stop with Ctrl+C or SIGTERM"))
    host = ServiceHost(settings, config, host=args.host, port=args.port,
                       with_scheduler=not args.no_scheduler)
    host.start()
    render.out(f"FMW service: API on {host.url} (docs {host.url}/api/docs); scheduler "
               f"{'off' if args.no_scheduler else 'on'}; stop with Ctrl+C or SIGTERM")
    sys.stdout.flush()
    return host.run()


def cmd_service_manage(args: argparse.Namespace, settings: Settings) -> int:
    from ops.nginx_run import find_nginx
    from scheduler import install
    from scheduler.config import OpsConfig
    windows = (args.platform or ("windows" if sys.platform == "win32" else "linux")) == "windows"
    service_dir = args.service_dir or settings.data_dir / "service"
    account = getattr(args, "account", None)
    log_dir = getattr(args, "log_dir", None) or settings.data_dir / "logs"
    specs = install.service_specs(
        getattr(args, "python", None) or sys.executable,
        getattr(args, "workdir", None) or str(Path.cwd()),
        str(settings.config_path) if settings.config_path else None, str(log_dir),
        account=account or install.DEFAULT_ACCOUNT,
        stop_grace_s=OpsConfig.from_settings(settings).stop_grace_s, ui=not args.no_ui,
        nginx=windows and not args.no_nginx and find_nginx(settings) is not None,
        data_dir=str(settings.data_dir))
    if not windows:
        return _linux(args, settings, specs, Path(service_dir), account)
    winsw = getattr(args, "winsw", None)
    left = install.installed_backend(Path(service_dir), specs)
    backend = args.backend or ("winsw" if winsw else "native" if args.action == "install"
                               else left)
    if args.action == "install":
        if backend == "winsw" and not winsw:
            raise ConfigError("--backend winsw needs --winsw PATH: the WinSW executable "
                              "(WinSW-x64.exe) that each service runs as")
        if backend == "native" and winsw:
            raise ConfigError("--winsw is for --backend winsw")
        if backend == "native" and left == "winsw" and not args.print_only:
            raise ConfigError(f"the services were installed with WinSW ({service_dir}): run "
                              "`fmw service remove` first")
    steps = install.windows_plan(args.action, specs, str(service_dir),
                                 str(winsw) if winsw else None, backend)
    if args.print_only:
        if isinstance(sys.stdout, io.TextIOWrapper):  # a pipe on Windows: the ANSI code page
            sys.stdout.reconfigure(errors="replace")
        for st in steps:
            print(st.shown())
            if st.kind == "write" and st.content is not None:
                print(st.content)
        return 0
    if sys.platform != "win32":
        raise ConfigError("a Windows plan can only be carried out on Windows; --print shows it")
    if args.action == "status":
        return _service_status(args, settings, steps)
    password = None
    if any(install.PASSWORD in st.argv for st in steps):
        import getpass
        password = getpass.getpass(f"password of {account}: ")
    try:
        for line in install.execute_windows(steps, password):
            if line:
                render.out(line)
    except RuntimeError as exc:
        raise FmwError(str(exc)) from exc
    render.out(f"{args.action}: done ({', '.join(s.id for s in specs)}; {backend})")
    return 0


def _linux(args: argparse.Namespace, settings: Settings, specs: list[Any], service_dir: Path,
           account: str | None) -> int:
    if args.action == "status":
        return _service_status(args, settings, [])
    if args.action != "install":
        verb = {"remove": "disable --now", "start": "start", "stop": "stop"}[args.action]
        render.error(f"`fmw service {args.action}` manages Windows services; on Linux run: "
                     f"sudo systemctl {verb} {' '.join(s.id for s in specs)}")
        return 0 if args.print_only else 2
    from scheduler import install
    files = {f"{s.id}.service": install.systemd_unit(s, user=account or "fmw") for s in specs}
    commands = ["sudo cp " + " ".join(str(service_dir / n) for n in files)
                + " /etc/systemd/system/", "sudo systemctl daemon-reload",
                "sudo systemctl enable --now " + " ".join(s.id for s in specs)]
    if args.print_only:
        for name, text in files.items():
            render.out(f"# {name}")
            print(text)
        for c in commands:
            print(c)
        return 0
    service_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (service_dir / name).write_text(text, encoding="utf-8")
        render.out(f"wrote {service_dir / name}")
    render.out("to install them:")
    for c in commands:
        render.out(f"  {c}")
    return 0


def _service_status(args: argparse.Namespace, settings: Settings, steps: list[Any]) -> int:
    from scheduler import install
    from scheduler.status import ops_status
    services: dict[str, str] = {}
    for st in steps:  # `sc.exe query NAME`, Windows only
        try:
            state = install.parse_sc_query(install.execute_windows([st])[0])
        except RuntimeError as exc:
            services[st.argv[2]] = str(exc)
        else:
            services[st.argv[2]] = state or "not installed"
    status = ops_status(settings)
    if args.json:
        print(json.dumps({"services": services, **status.as_json()}, ensure_ascii=False))
        return 0
    for name, state in services.items():
        render.out(f"{name}: {state}")
    for line in status.lines():
        render.out(line)
    return 0


def _ready(settings: Settings) -> Any:
    from ledger.schema import connect_current
    return connect_current(settings, autocommit=True)


def cmd_sla_list(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.sla import list_definitions
    with _ready(settings) as conn:
        defs = list_definitions(conn)
    if args.json:
        print(json.dumps([d.as_json() for d in defs], ensure_ascii=False))
        return 0
    for d in defs:
        target = {"freshness": f"< {d.threshold:g} h" if d.threshold else "",
                  "daily_deadline": f"by {d.deadline:%H:%M} {settings.timezone}"
                  if d.deadline else "",
                  "success_rate": f">= {d.threshold:.0%} over {d.window_days} days"
                  if d.threshold is not None else "",
                  "api_p95": f"< {d.threshold:g} s (min {d.min_samples} requests)"
                  if d.threshold else ""}.get(d.kind, "")
        render.out(f"{d.name:<16} {d.kind:<15} {'on ' if d.enabled else 'off'} {target}")
    return 0


def cmd_sla_set(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.sla import update_definition
    changes = {k: v for k, v in (("threshold", args.threshold), ("deadline", args.deadline),
                                 ("window_days", args.window_days),
                                 ("min_samples", args.min_samples),
                                 ("description", args.description), ("enabled", args.enabled))
               if v is not None}
    with _ready(settings) as conn:
        d = update_definition(conn, args.name, **changes)
    render.out(f"SLA {d.name} updated: " + ", ".join(f"{k} {v}" for k, v in d.as_json().items()
                                                    if k in changes))
    return 0


def cmd_sla_check(args: argparse.Namespace, settings: Settings) -> int:
    from scheduler.config import OpsConfig
    from scheduler.sla import check_slas
    with _ready(settings):
        pass
    r = check_slas(settings, OpsConfig.from_settings(settings))
    if args.json:
        print(json.dumps({"findings": [f.as_json() for f in r.findings],
                          "opened": [v.as_json() for v in r.opened],
                          "closed": [v.as_json() for v in r.closed],
                          "alerts_sent": r.alerts_sent, "alert_errors": list(r.alert_errors)},
                         ensure_ascii=False))
        return 0
    for f in r.findings:
        state = {True: "ok  ", False: "FAIL", None: "n/a "}[f.ok]
        render.out(f"{state} {f.sla:<16} {f.detail}")
    render.out(f"opened {len(r.opened)}, closed {len(r.closed)}, alerts sent {r.alerts_sent}")
    for e in r.alert_errors:
        render.error(e)
    return 0


def cmd_sla_violations(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.sla import open_violations, recent_violations
    with _ready(settings) as conn:
        items = recent_violations(conn, args.limit) if args.all else open_violations(conn)
    if args.json:
        print(json.dumps([v.as_json() for v in items], ensure_ascii=False))
        return 0
    if not items:
        render.out("no open SLA violations" if not args.all else "no SLA violations")
    for v in items:
        closed = f"closed {v.closed_at:%Y-%m-%d %H:%M}" if v.closed_at else "OPEN"
        render.out(f"{v.id:>5} {v.sla_name:<16} opened {v.opened_at:%Y-%m-%d %H:%M} {closed}: "
                   f"{v.detail}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fmw.cli_ops`: these commands with fmw's global options, standalone."""
    p = argparse.ArgumentParser(prog="fmw")
    p.add_argument("--config", type=Path)
    p.add_argument("--data-dir", type=Path)
    register(p.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = p.parse_args(argv)
    try:
        return int(args.func(args, load_settings(args.config, args.data_dir)))
    except FmwError as exc:
        render.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        render.error("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
