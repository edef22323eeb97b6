"""Per-process resources of the explorer: settings, the one DuckDB engine, the usage recorder.

The Streamlit process gets its settings from its command line (``streamlit run ui/app.py --
--config F --data-dir D --ui-config JSON``, written by `ui.launch`); tests and an in-process
host call `use(settings, ui)` first instead. The engine and the recorder are
`st.cache_resource`s: one per process, shared by every session.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import streamlit as st

import fmw.relay as relay
from fmw.settings import Settings, load_settings
from query import Engine, QuerySpec
from query.scope import RowScope
from ui import access
from ui.access import OPEN, Viewer
from ui.config import UiConfig, ui_config
from ui.devapi import DevApi
from ui.signon import auth_from_json
from ui.usage import LedgerIO, UsageRecorder

_injected: tuple[Settings, UiConfig] | None = None
LOOPBACK = "127.0.0.1"


def use(settings: Settings, ui: UiConfig | None = None) -> None:
    """Make this process's explorer use `settings` (instead of its command line)."""
    global _injected
    _injected = (settings, ui or ui_config(settings))


def parse_argv(argv: Sequence[str]) -> tuple[Settings, UiConfig]:
    """Settings from the script arguments `ui.launch` passes.

    Raises:
        ConfigError: the config file or a value is invalid.
    """
    p = argparse.ArgumentParser(prog="fmw-ui", add_help=False)
    p.add_argument("--config", type=Path)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--ui-config")
    p.add_argument("--auth-config")
    args, _ = p.parse_known_args(list(argv))
    settings = load_settings(args.config, args.data_dir)
    if args.auth_config:
        settings = replace(settings, auth=auth_from_json(args.auth_config))
    ui = UiConfig.from_json(args.ui_config) if args.ui_config else ui_config(settings)
    return settings, ui


@st.cache_resource(show_spinner=False)
def _from_argv(argv: tuple[str, ...]) -> tuple[Settings, UiConfig]:
    return parse_argv(argv)


def config() -> tuple[Settings, UiConfig]:
    if _injected is not None:
        return _injected
    return _from_argv(tuple(sys.argv[1:]))


@st.cache_resource(show_spinner=False)
def _engine(root: str, threads: int, memory: str, _settings: Settings) -> Engine:
    return Engine(_settings)


def engine(settings: Settings) -> Engine:
    """The process's one engine for these snapshots (thread-safe, shared by all sessions)."""
    return _engine(str(settings.snapshots_path), settings.duckdb_threads,
                   settings.duckdb_memory_limit, settings)


@st.cache_resource(show_spinner=False)
def _recorder(data_dir: str, schema: str, url: str, tz: str, flush_s: float,
              _settings: Settings) -> UsageRecorder:
    return UsageRecorder(LedgerIO(_settings), tz, flush_s).start()


def recorder(settings: Settings, ui: UiConfig) -> UsageRecorder:
    return _recorder(str(settings.data_dir), settings.schema, settings.database_url or "",
                     settings.timezone, ui.usage_flush_s, settings)


def pick_client(ip: str | None, headers: Mapping[str, str] | None) -> str:
    """The browser's address. Behind Nginx on this machine the peer is loopback and the
    client is the last X-Forwarded-For entry (the one Nginx added); a forwarded header from
    any other peer is ignored (anyone can send one).

    Streamlit reports a loopback peer (127.0.0.1, ::1) as None, so None is a loopback peer:
    Nginx's client, or without a forwarded header a browser on this machine (127.0.0.1).
    """
    ip = (ip.strip() if isinstance(ip, str) else "") or LOOPBACK
    try:
        loopback = ipaddress.ip_address(ip).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        forwarded = next((v for k, v in (headers or {}).items()
                          if isinstance(k, str) and k.lower() == "x-forwarded-for"
                          and isinstance(v, str)), "")
        last = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return ip or "unknown"


def client_address() -> str:
    return pick_client(st.context.ip_address, dict(st.context.headers or {}))


@dataclass(frozen=True)
class Ctx:
    """What a page gets: settings, explorer settings, the engine and who is looking."""

    settings: Settings
    ui: UiConfig
    engine: Engine
    viewer: Viewer = OPEN

    @property
    def root(self) -> str:
        return str(self.settings.snapshots_path)

    @property
    def scope(self) -> RowScope | None:
        """The viewer's row scope (None: every row)."""
        return self.viewer.scope

    def scoped(self, spec: QuerySpec) -> QuerySpec:
        """`spec` carrying the viewer's row scope: every read of a page goes through this."""
        return spec if spec.scope == self.scope else replace(spec, scope=self.scope)


#: ``GET /api/me`` decides the page a person sees: it must not hold the page up for long.
ME_TIMEOUT_S = 5.0


def me_lookup(settings: Settings, ui: UiConfig) -> access.MeLookup:
    """Asks the API's ``GET /api/me`` with an access token, relayed with the browser's
    address like the Dev and API tokens pages (the API checks and audits that address)."""
    def lookup(token: str) -> Mapping[str, Any]:
        return DevApi(ui.api_url, token, ME_TIMEOUT_S, client=client_address(),
                      relay_key=relay.load_key(settings.data_dir)).me()
    return lookup


def viewer(settings: Settings, ui: UiConfig) -> Viewer:
    """This session's viewer, its role from the API's role map (`ui.access`)."""
    return access.current(settings.auth, me_lookup(settings, ui))


def ctx() -> Ctx:
    settings, ui = config()
    return Ctx(settings, ui, engine(settings), viewer(settings, ui))
