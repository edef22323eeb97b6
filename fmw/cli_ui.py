"""CLI commands of the explorer: `fmw ui` (Streamlit alone) and `fmw up` (API + explorer).

`register(subparsers)` adds them to the `fmw` parser (see fmw/cli.py); the handlers are thin
fronts over `ui.launch` and `fmw.up`. `run_up` is re-exported for `fmw demo`.
"""

from __future__ import annotations

import argparse
from typing import Any

from fmw.settings import Settings
from fmw.up import run_up

__all__ = ["cmd_ui", "cmd_up", "register", "run_up"]


def register(subparsers: Any) -> None:
    """Add `ui` and `up` to the `fmw` subparsers."""
    s = subparsers.add_parser("ui", help="run the Streamlit explorer, 127.0.0.1:8501 by default")
    s.add_argument("--host", help="address to listen on (default: ui_host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default: ui_port, 8501)")
    s.set_defaults(func=cmd_ui)

    s = subparsers.add_parser("up", help="run the API with its scheduler and the explorer "
                                         "together (Ctrl+C stops all)")
    s.add_argument("--host", help="explorer address (default: ui_host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="explorer port (default: ui_port, 8501)")
    s.add_argument("--api-host", help="API address (default: api_host, 127.0.0.1)")
    s.add_argument("--api-port", type=int, help="API port (default: api_port, 8000)")
    s.add_argument("--no-scheduler", action="store_true",
                   help="do not run the sync scheduler and SLA checks")
    s.set_defaults(func=cmd_up)


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    from ui.config import ui_config
    from ui.launch import serve_ui
    return serve_ui(settings, ui_config(settings, host=args.host, port=args.port))


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    return run_up(settings, host=args.host, port=args.port, api_host=args.api_host,
                  api_port=args.api_port, scheduler=not args.no_scheduler)
