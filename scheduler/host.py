"""The service host: waitress serving the API plus the scheduler, in one process; and the UI host
that runs Streamlit as a child process (through `ui.launch`).

Stopping (SIGTERM, SIGINT/Ctrl+C, Ctrl+Break, WinSW's Ctrl+C, or the Windows service manager's
stop through `scheduler.winservice`, which all set the host's stop event): stop taking
requests, stop firing, give a running sync `service_stop_grace_s` seconds to finish, then
cancel it. A sync is one transaction, so a cancelled one leaves the ledger exactly as before;
its run is recorded as failed ("aborted ...") and the next start catches up.

`api_hosted` and `ui_hosted` wrap both hosts for `scheduler.winservice`: a stop event in, an
exit code out, no signal handlers (a service's host does not run on the main thread).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from fmw.errors import FmwError
from fmw.net import forget_listening, note_listening
from fmw.settings import Settings
from scheduler.config import OpsConfig
from scheduler.core import SyncScheduler
from scheduler.pgwatch import EmbeddedWatch, WatchPolicy, webhook_notify

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGBREAK")
                     if hasattr(signal, n))


def install_stop_handlers(stop: threading.Event) -> None:
    """Route the stop signals to `stop` (main thread only)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        if stop.is_set():
            log.warning("second stop signal (%s): still shutting down cleanly", signum)
        else:
            log.info("stop signal %s received: shutting down", signum)
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


@dataclass(frozen=True)
class HostExit:
    """How a host ended: its exit code, and whether no sync was left running."""

    code: int
    finished: bool


class ServiceHost:
    """The API (waitress, in a thread) and the scheduler (APScheduler threads), started and
    stopped together; `stop_event` (set by a stop signal or the service manager) stops them."""

    def __init__(self, settings: Settings, config: OpsConfig | None = None, *,
                 host: str | None = None, port: int | None = None,
                 with_scheduler: bool = True,
                 stop_event: threading.Event | None = None) -> None:
        from api.services import api_setting
        self.settings = settings
        self.config = config or OpsConfig.from_settings(settings)
        self.host = host or str(api_setting(settings, "api_host"))
        self.port = int(port if port is not None else api_setting(settings, "api_port"))
        self.with_scheduler = with_scheduler
        self.stop_event = stop_event or threading.Event()
        self.scheduler: SyncScheduler | None = None
        self.services: Any = None
        self.server: Any = None
        self.pg_watch = EmbeddedWatch(
            settings, WatchPolicy(interval_s=self.config.pg_watch_s),
            notify=webhook_notify(self.config.webhook_url, self.config.webhook_timeout_s))

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    def _digest(self) -> None:
        """The daily digest to the webhook (when one is configured)."""
        if not self.config.webhook_url:
            return
        from ops.digest import send
        send(self.settings)
        log.info("daily digest sent")

    def _metrics(self) -> dict[str, Any] | None:
        return self.services.metrics.snapshot() if self.services is not None else None

    def _render_nginx(self, entries: list[Any]) -> None:
        """Re-render (and, with nginx_reload, reload) the Nginx front after an allowlist change."""
        from ops.nginx_run import regenerate
        regenerate(self.settings, entries)

    def start(self, *, signals: bool = True) -> None:
        """Build the app, start waitress on host:port (0 = ephemeral) and the scheduler.

        Args:
            signals: route SIGTERM/SIGINT/SIGBREAK to the stop event (main thread only; a
                Windows service's host runs on another thread and is stopped by its event).

        Raises:
            ConfigError: a bad setting or a refused bind address.
        """
        from api.app import create_app
        from api.gateway import LedgerGateway
        from api.launcher import SyncLauncher
        from api.server import start
        from api.services import build_services
        if signals:
            install_stop_handlers(self.stop_event)  # a signal during start-up stops after it
        overrides: dict[str, Any] = {}
        gateway = LedgerGateway(self.settings)
        if self.with_scheduler:
            self.scheduler = SyncScheduler(self.settings, self.config, metrics=self._metrics,
                                           digest=self._digest)
            overrides["launcher"] = SyncLauncher(self.settings, gateway,
                                                 job=self.scheduler.api_job())
            overrides["scheduler_status"] = self.scheduler.status
        overrides["allow_list_changed"] = self._render_nginx
        self.services = build_services(self.settings, gateway=gateway, **overrides)
        app = create_app(self.settings, self.services)
        try:
            self.server = start(app, self.settings, self.host, self.port)
        except OSError as exc:
            self.services.close(timeout=1)
            raise FmwError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        note_listening(self.settings.data_dir, self.host, self.server.port)
        if self.scheduler is not None:
            self.scheduler.start()
        log.info("FMW service: API on %s (docs: %s/api/docs), scheduler %s", self.url, self.url,
                 "on" if self.scheduler else "off")

    def stop(self) -> bool:
        """Stop everything; True when no sync was left running."""
        self.stop_event.set()
        if self.server is not None:
            self.server.stop(timeout=10)
            forget_listening(self.settings.data_dir)
        finished = True
        if self.scheduler is not None:
            finished = self.scheduler.shutdown()
        if self.services is not None:
            self.services.close(timeout=5)
        log.info("FMW service stopped")
        return finished

    def serve(self) -> HostExit:
        """Serve until the stop event is set (or the HTTP server dies), then stop everything."""
        try:
            # A timed wait, so Ctrl+C is seen promptly on Windows too.
            while not self.stop_event.wait(0.5):
                if self.server is not None and not self.server.thread.is_alive():
                    log.error("the HTTP server thread ended unexpectedly")
                    return HostExit(1, self.stop())
                self.pg_watch.tick()
        except KeyboardInterrupt:
            log.info("interrupted: shutting down")
        finished = self.stop()
        if not finished:
            log.error("a sync did not stop in time; exiting anyway (the ledger rolls it back)")
        return HostExit(0, finished)

    def run(self) -> int:
        """Serve until a stop signal; the exit code for the service manager."""
        ended = self.serve()
        if not ended.finished:
            # Worker threads would keep the interpreter alive; PostgreSQL rolls back the open
            # transaction as soon as this process's connections close.
            logging.shutdown()
            os._exit(1)
        return ended.code


#: A host as `scheduler.winservice` runs it: until `stop` is set; `ready()` once it serves.
Hosted = Callable[[threading.Event, Callable[[], None]], int]


def api_hosted(settings: Settings, config: OpsConfig, *, host: str | None = None,
               port: int | None = None, with_scheduler: bool = True) -> Hosted:
    """The API + scheduler host for a Windows service: the service's stop event stops it."""
    def run(stop: threading.Event, ready: Callable[[], None]) -> int:
        h = ServiceHost(settings, config, host=host, port=port, with_scheduler=with_scheduler,
                        stop_event=stop)
        h.start(signals=False)
        ready()
        return h.serve().code
    return run


# -- the UI host ---------------------------------------------------------------------------------
def ui_app_path() -> Path:
    """Where the Streamlit entry point is expected: `ui/app.py` of the `ui` package."""
    spec = importlib.util.find_spec("ui")
    if spec is None or not spec.submodule_search_locations:
        return Path(__file__).resolve().parent.parent / "ui" / "app.py"
    return Path(list(spec.submodule_search_locations)[0]) / "app.py"


def run_ui(settings: Settings, host: str | None = None, port: int | None = None, *,
           stop: threading.Event | None = None, ready: Callable[[], None] | None = None,
           output: logging.Logger | None = None) -> int:
    """Run the Streamlit UI (a child process, via `ui.launch`) until a stop signal, or until
    `stop` is set when one is given.

    Args:
        ready: called once the explorer answers its health check.
        output: log the child's output there, line by line (a service has no console).

    Returns 0 after a stop, 1 when Streamlit exited by itself (so the service manager's
    recovery actions restart it).

    Raises:
        FmwError: ui/app.py or Streamlit is missing.
    """
    app = ui_app_path()
    if not app.is_file():
        raise FmwError(f"the Streamlit UI is not available: {app} does not exist; run the API "
                       "and scheduler with `fmw service run`")
    if importlib.util.find_spec("streamlit") is None:
        raise FmwError("Streamlit is not installed in this environment: pip install streamlit")
    from ui.config import ui_config
    from ui.launch import serve_ui
    return serve_ui(settings, ui_config(settings, host=host, port=port), stop=stop,
                    on_ready=ready, output=output)


def ui_hosted(settings: Settings, host: str | None = None, port: int | None = None) -> Hosted:
    """The explorer host for a Windows service (Streamlit's output goes to the log)."""
    def run(stop: threading.Event, ready: Callable[[], None]) -> int:
        return run_ui(settings, host, port, stop=stop, ready=ready,
                      output=logging.getLogger("fmw.ui.streamlit"))
    return run
