"""Starting the explorer: the Streamlit command line (a plan, tested as data), the child
process, its readiness check, and a clean stop on Ctrl+C / SIGTERM.

Streamlit runs as a child process (``python -m streamlit run ui/server.py``, an ``st.App``
serving the pages of ``ui/app.py`` and the download route, see `ui.server`): its server is
bound to 127.0.0.1:8501 by default, XSRF protection on, usage statistics off, no file
watcher, no browser opened. With ``auth.mode = "oidc"`` it also gets its sign-in
configuration (`ui.signon`: a secrets file under ``<data_dir>/secrets/``). The child reads
the same settings: the config file and data dir on its command line, the resolved core settings as FMW_* variables (so values given
programmatically reach it too), and the explorer's own settings (and with sign-on the
``[auth]`` settings, less the client secret) as JSON.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fmw.errors import ConfigError, FmwError
from fmw.net import is_loopback
from fmw.settings import Settings
from ui.config import UiConfig
from ui.signon import SignonPlan, auth_to_json, prepare_signon

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().with_name("app.py")
#: What ``streamlit run`` starts: the ASGI app (``st.App``) that serves `APP` and the downloads.
SERVER = APP.with_name("server.py")
READY_TIMEOUT_S = 90.0


def check_bind(settings: Settings, ui: UiConfig) -> None:
    """Without sign-on the explorer has no login of its own: a non-loopback address needs
    ``ui_allow_public_bind`` (FMW_UI_ALLOW_PUBLIC_BIND); keep 127.0.0.1 behind Nginx.

    Raises:
        ConfigError: binding `ui.host` needs the setting.
    """
    if is_loopback(ui.host) or getattr(settings, "ui_allow_public_bind", False):
        return
    raise ConfigError(f"refusing to serve the explorer on {ui.host}, which is not a loopback "
                      "address: set ui_allow_public_bind = true (FMW_UI_ALLOW_PUBLIC_BIND=1) "
                      "to allow it, or keep 127.0.0.1 behind Nginx")


def streamlit_flags(ui: UiConfig) -> list[str]:
    """Streamlit options: where to listen, no telemetry, no outside requests, XSRF on."""
    flags = {
        "server.address": ui.host,
        "server.port": str(ui.port),
        "server.baseUrlPath": ui.base_url_path,
        "server.headless": "true",
        "server.enableXsrfProtection": "true",
        "server.enableCORS": "true",
        "server.fileWatcherType": "none",
        "server.runOnSave": "false",
        "server.showEmailPrompt": "false",
        "server.enableStaticServing": "false",
        "browser.gatherUsageStats": "false",
        "browser.serverAddress": "127.0.0.1" if is_loopback(ui.host) else ui.host,
        "browser.serverPort": str(ui.port),
        "client.toolbarMode": "minimal",
        "client.showErrorDetails": "type",
        "client.showErrorLinks": "false",
        "global.developmentMode": "false",
        "logger.level": "warning",
    }
    return [f"--{k}={v}" for k, v in flags.items()]


def streamlit_command(settings: Settings, ui: UiConfig, *, python: str = sys.executable,
                      signon: SignonPlan | None = None) -> list[str]:
    """The whole command line that serves the explorer (with `signon`: its sign-in)."""
    script: list[str] = ["--data-dir", str(settings.data_dir), "--ui-config", ui.to_json()]
    if settings.config_path is not None:
        script = ["--config", str(settings.config_path), *script]
    if settings.auth.oidc:  # roles and scopes exactly as this process has them
        script += ["--auth-config", auth_to_json(settings.auth)]
    flags = [*streamlit_flags(ui), *(signon.flags if signon is not None else [])]
    return [python, "-m", "streamlit", "run", str(SERVER), *flags, "--", *script]


def child_environment(settings: Settings, base: Mapping[str, str],
                      signon: SignonPlan | None = None) -> dict[str, str]:
    """`base` with the resolved core settings as FMW_* variables (they win over the file),
    and what the sign-in needs (the provider's CA bundle)."""
    env = {k: v for k, v in base.items() if k not in ("FMW_CONFIG", "FMW_DATABASE_URL")}
    env.update({
        "FMW_DATA_DIR": str(settings.data_dir),
        "FMW_SCHEMA": settings.schema,
        "FMW_TIMEZONE": settings.timezone,
        "FMW_SNAPSHOTS_DIR": str(settings.snapshots_path),
        "FMW_DUCKDB_THREADS": str(settings.duckdb_threads),
        "FMW_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
        "FMW_CHANGES_WINDOW_DAYS": str(settings.changes_window_days),
        "FMW_PROGRESS": "0",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "PYTHONUNBUFFERED": "1",
    })
    if settings.database_url:
        env["FMW_DATABASE_URL"] = settings.database_url
    if signon is not None:
        env.update(signon.env)
    return env


@dataclass
class UiProcess:
    """A running explorer (a Streamlit child process)."""

    proc: subprocess.Popen[bytes]
    ui: UiConfig

    @property
    def url(self) -> str:
        return self.ui.url

    @property
    def health_url(self) -> str:
        return self.url + "_stcore/health"

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S,
                   stop: threading.Event | None = None) -> bool:
        """Wait until the server answers its health check; False when `stop` was set first.

        Raises:
            FmwError: the process ended or did not answer in time.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return False
            if not self.running():
                raise FmwError(f"the explorer (Streamlit) exited with code {self.proc.returncode}"
                               " before it was ready; see its output above")
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        raise FmwError(f"the explorer did not answer at {self.health_url} within "
                       f"{timeout_s:g} s")

    def stop(self, timeout_s: float = 15.0) -> int:
        """Stop the server (SIGTERM, then kill after `timeout_s`); returns its exit code."""
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("the explorer did not stop within %s s; killing it", timeout_s)
                self.proc.kill()
                self.proc.wait(timeout_s)
        return int(self.proc.returncode or 0)


def start_ui(settings: Settings, ui: UiConfig, *, base_env: Mapping[str, str] | None = None,
             output: IO[Any] | int | None = None) -> UiProcess:
    """Start the explorer in a child process (not yet ready: call `wait_ready`).

    Args:
        base_env: the environment the child starts from (default: this process's).
        output: where its stdout/stderr go (default: inherited).

    Raises:
        ConfigError: a non-loopback address without ui_allow_public_bind.
    """
    check_bind(settings, ui)
    signon = prepare_signon(settings, ui)
    env = child_environment(settings, os.environ if base_env is None else base_env, signon)
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    proc = subprocess.Popen(streamlit_command(settings, ui, signon=signon), env=env,
                            stdout=output, stderr=subprocess.STDOUT if output is not None else None,
                            stdin=subprocess.DEVNULL, **kwargs)
    return UiProcess(proc, ui)


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl+C (SIGINT), SIGTERM (and SIGBREAK on Windows) while inside."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    names = ["SIGINT", "SIGTERM", "SIGBREAK"]
    sigs = [getattr(signal, n) for n in names if hasattr(signal, n)]

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def serve_ui(settings: Settings, ui: UiConfig, *, stop: threading.Event | None = None,
             on_ready: Callable[[], None] | None = None,
             output: logging.Logger | None = None) -> int:
    """`fmw ui`: serve the explorer until Ctrl+C or SIGTERM; returns the exit code.

    Args:
        stop: stop when this is set instead (a Windows service's host: no signal handlers).
        on_ready: called once the explorer answers its health check.
        output: log the child's output there line by line, instead of inheriting the console.
    """
    from fmw.logs import pump_lines
    from fmw.render import error, out
    with (contextlib.nullcontext(stop) if stop is not None else stop_signals()) as stop_event:
        child = start_ui(settings, ui, output=subprocess.PIPE if output is not None else None)
        if output is not None and child.proc.stdout is not None:
            pump_lines(child.proc.stdout, output)
        try:
            if not child.wait_ready(stop=stop_event):
                return 0
            if on_ready is not None:
                on_ready()
            out(f"FMW explorer on {child.url} (Ctrl+C to stop)")
            while not stop_event.wait(0.5):
                if not child.running():
                    error(f"the explorer exited with code {child.proc.returncode}")
                    return 1
        finally:
            child.stop()
    out("explorer stopped")
    return 0

