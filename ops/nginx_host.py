"""Nginx in the foreground as FMW's child process: what the `fmw-nginx` service runs.

nginx.exe for Windows is a console program, not a service program (it cannot answer the
service control manager), so `fmw service run --nginx` (under `--as-service fmw-nginx`, or
WinSW) starts it as a child and stands in front of it:

- start: `nginx [-p nginx_prefix] [-c nginx_main_conf]`. nginx for Windows never daemonizes;
  elsewhere the configuration must say `daemon off;` (as `ops.nginx.main_conf` does). Its
  console output goes to FMW's log line by line; its error_log and access_log stay where its
  configuration puts them.
- it serves until the stop event is set; when nginx exits by itself (a bad configuration, a
  port in use) the host returns 1, so that the service's recovery actions restart it.
- stop: `nginx -s quit` (graceful: open requests finish), after `quit_grace_s` `nginx -s stop`
  (fast), then kill. A graceful quit alone could wait for ever on the explorer's websockets.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fmw.errors import ConfigError
from fmw.logs import pump_lines
from fmw.settings import Settings
from ops.config import ops_setting
from ops.nginx_run import control_args, find_nginx

log = logging.getLogger(__name__)

QUIT_GRACE_S = 10.0
STOP_GRACE_S = 5.0
#: nginx refuses a bad configuration at once, a port in use after 5 tries 0.5 s apart.
EARLY_EXIT_S = 3.0


@dataclass(frozen=True)
class NginxCommands:
    """The three command lines of a foreground nginx."""

    run: tuple[str, ...]
    quit: tuple[str, ...]
    stop: tuple[str, ...]


def nginx_commands(settings: Settings, nginx: str) -> NginxCommands:
    """Run, graceful quit and fast stop, all with nginx_prefix/nginx_main_conf (pure)."""
    base = (nginx, *control_args(settings))
    return NginxCommands(run=base, quit=(*base, "-s", "quit"), stop=(*base, "-s", "stop"))


def _child_kwargs() -> dict[str, Any]:
    # Its own process group: a console Ctrl+C (WinSW's stop) reaches FMW, which then stops
    # nginx in order, instead of reaching both at once.
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {}


def _signal(argv: tuple[str, ...]) -> None:
    try:
        r = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30, check=False, **_child_kwargs())
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("`%s` failed: %s", " ".join(argv[-2:]), exc)
        return
    if r.returncode != 0:
        log.warning("`%s` exited with %d: %s", " ".join(argv[-2:]), r.returncode,
                    (r.stderr + r.stdout).decode("utf-8", "replace").strip())


def stop_nginx(proc: subprocess.Popen[bytes], cmds: NginxCommands,
               quit_grace_s: float = QUIT_GRACE_S) -> int:
    """`-s quit`, then `-s stop`, then kill, each after its grace; returns nginx's exit code."""
    for argv, grace in ((cmds.quit, quit_grace_s), (cmds.stop, STOP_GRACE_S)):
        if proc.poll() is not None:
            break
        _signal(argv)
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            log.warning("nginx still runs %g s after `%s`", grace, " ".join(argv[-2:]))
    if proc.poll() is None:
        proc.kill()
        proc.wait(STOP_GRACE_S)
    return int(proc.returncode or 0)


def serve_nginx(settings: Settings, stop: threading.Event,
                ready: Callable[[], None] | None = None, *,
                output: logging.Logger | None = None,
                quit_grace_s: float = QUIT_GRACE_S) -> int:
    """Run nginx in the foreground until `stop` is set.

    Args:
        ready: called once nginx has survived its start-up checks.
        output: log nginx's console output there (default: inherit the console).

    Returns:
        0 after a stop; 1 when nginx exited by itself.

    Raises:
        ConfigError: no nginx executable (`nginx_exe`).
    """
    nginx = find_nginx(settings)
    if nginx is None:
        raise ConfigError(f"{ops_setting(settings, 'nginx_exe')} not found: set nginx_exe to "
                          "the path of nginx.exe")
    cmds = nginx_commands(settings, nginx)
    pipe = subprocess.PIPE if output is not None else None
    proc = subprocess.Popen(list(cmds.run), stdin=subprocess.DEVNULL, stdout=pipe,
                            stderr=subprocess.STDOUT if pipe else None, **_child_kwargs())
    if output is not None and proc.stdout is not None:
        pump_lines(proc.stdout, output)
    log.info("nginx started (pid %d): %s", proc.pid, " ".join(cmds.run))
    try:
        try:
            code = proc.wait(EARLY_EXIT_S)
        except subprocess.TimeoutExpired:
            pass
        else:
            hint = "" if code else " (it daemonized itself: its configuration needs `daemon off;`)"
            log.error("nginx exited at start with code %d%s", code, hint)
            return 1
        if ready is not None:
            ready()
        while not stop.wait(0.5):
            if proc.poll() is not None:
                log.error("nginx exited by itself with code %d", proc.returncode)
                return 1
        return 0
    finally:
        code = stop_nginx(proc, cmds, quit_grace_s)
        log.info("nginx stopped (exit code %d)", code)


def nginx_hosted(settings: Settings) -> Callable[[threading.Event, Callable[[], None]], int]:
    """The nginx host for a Windows service (`scheduler.winservice`): output to the log."""
    def run(stop: threading.Event, ready: Callable[[], None]) -> int:
        return serve_nginx(settings, stop, ready, output=logging.getLogger("fmw.nginx"))
    return run
