"""`fmw up`: the API (with its scheduler) and the explorer together on one machine.

The API and the scheduler run in this process as the service host runs them
(`scheduler.host.ServiceHost`: waitress in a thread, APScheduler); the explorer runs as its
Streamlit child process (`ui.launch`). Ctrl+C, SIGTERM (and Ctrl+Break on Windows) stop all:
the explorer first, then the host, which lets a running sync finish or cancels it cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fmw import render
from fmw.settings import Settings
from ui.config import UiConfig, ui_config, ui_setting
from ui.launch import start_ui


def banner(ui: UiConfig, api_url: str, open_note: str | None, scheduler: bool) -> list[str]:
    """What `fmw up` prints once everything answers."""
    lines = ["FMW is up:",
             f"  explorer   {ui.url}",
             f"  API        {api_url}/api/v1/features   (docs: {api_url}/api/docs)",
             f"  scheduler  {'on (see GET /api/dev/health)' if scheduler else 'off'}"]
    if open_note:
        lines.append(open_note)
    lines.append("Press Ctrl+C to stop everything.")
    return lines


def run_up(settings: Settings, *, open_note: str | None = None, host: str | None = None,
           port: int | None = None, api_host: str | None = None, api_port: int | None = None,
           scheduler: bool = True,
           on_ready: Callable[[UiConfig, str], Any] | None = None) -> int:
    """Serve the API, its scheduler and the explorer until Ctrl+C / SIGTERM.

    Call from the main thread (it handles the stop signals).

    Args:
        open_note: printed under the URLs (e.g. what the demo left to look at).
        host, port: the explorer's address (default: ui_host, ui_port).
        api_host, api_port: the API's (default: api_host, api_port).
        scheduler: run the sync scheduler and SLA checks too.
        on_ready: called with (explorer settings, API base URL) once both answer.

    Returns:
        0 after a stop signal; 1 when the explorer or the API ended by itself, or a sync did
        not stop in time.

    Raises:
        ConfigError: a bad setting or a refused (non-loopback) address.
        FmwError: a port is taken, or the explorer did not start.
    """
    from scheduler.host import ServiceHost

    ui = ui_config(settings, host=host, port=port)
    service = ServiceHost(settings, host=api_host, port=api_port, with_scheduler=scheduler)
    service.start()  # also routes the stop signals to service.stop_event
    code = 0
    try:
        if not ui_setting(settings, "ui_api_url"):
            ui = replace(ui, api_url=service.url)
        child = start_ui(settings, ui)
        try:
            if child.wait_ready(stop=service.stop_event):
                for line in banner(ui, service.url, open_note, scheduler):
                    render.out(line)
                if on_ready is not None:
                    on_ready(ui, service.url)
            while not service.stop_event.wait(0.5):
                if not child.running():
                    render.error(f"the explorer exited with code {child.proc.returncode}")
                    code = 1
                    break
                if not service.server.thread.is_alive():
                    render.error("the API server thread ended unexpectedly")
                    code = 1
                    break
        finally:
            child.stop()
    finally:
        if not service.stop():
            render.error("a sync did not stop in time; the ledger rolls it back")
            code = 1
    render.out("FMW stopped (explorer, API and scheduler)")
    return code
