"""The collaborators `create_app` is built from, and the API's settings with their defaults.

API settings are read with `getattr(settings, name, default)` so this module works whether or
not `fmw.settings.Settings` declares them yet (see `api_setting`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.exports import ExportCache
from api.gateway import LedgerGateway
from api.launcher import SyncLauncher
from api.metrics import LatencyFlusher, Metrics
from api.respcache import ResponseCache
from api.security import AllowList, AllowListListener, RateLimiter
from api.snapshot_watch import SnapshotWatch
from fmw import relay
from fmw.settings import Settings
from query.snapshot import Resolver

#: name -> default of every setting the API reads.
API_DEFAULTS: dict[str, Any] = {
    "api_host": "127.0.0.1",
    "api_port": 8000,
    "api_allow_public_bind": False,
    "api_threads": 8,
    "api_connection_limit": 200,
    "api_channel_timeout_s": 120,
    "api_trusted_proxy": None,
    "api_allow_loopback": True,
    "api_allowlist_refresh_s": 30.0,
    "api_dev_rate_per_minute": 120,
    "api_max_body_bytes": 1_048_576,
    "api_max_query_chars": 8192,
    "api_response_cache_mb": 64,
    "api_export_cache_mb": 4096,
    "api_warm_downloads": True,
    "api_snapshot_check_s": 300.0,
}


def api_setting(settings: Settings, name: str) -> Any:
    value = getattr(settings, name, None)
    return API_DEFAULTS[name] if value is None else value


def _no_scheduler() -> dict[str, Any]:
    return {"status": "not configured", "detail": "no scheduler runs in this process"}


@dataclass(frozen=True)
class Services:
    settings: Settings
    gateway: LedgerGateway
    allow_list: AllowList
    dev_rate: RateLimiter
    metrics: Metrics
    launcher: SyncLauncher
    snapshots: Resolver
    reader: Any = None  # the query layer's reader for v1 (see api.v1)
    responses: ResponseCache | None = None
    exports: ExportCache | None = None
    scheduler_status: Callable[[], dict[str, Any]] = _no_scheduler
    #: Called with the stored entries after an allowlist change (the service host re-renders
    #: the Nginx config with it); its FmwError is reported, not raised.
    allow_list_changed: Callable[[list[Any]], Any] | None = None
    clock: Callable[[], float] = field(default=time.time)
    #: Re-checks the served snapshot version and alerts (see `api.snapshot_watch`).
    snapshot_watch: SnapshotWatch | None = None
    _relay_key: list[bytes] = field(default_factory=list)

    def relay_key(self) -> bytes:
        """The key the explorer signs relayed calls with (fmw.relay), read once."""
        if not self._relay_key:
            self._relay_key.append(relay.load_key(self.settings.data_dir))
        return self._relay_key[0]

    #: Applies allow-list changes announced by PostgreSQL (api.security.AllowListListener).
    allow_list_listener: Any = None
    #: Writes per-minute latency to the ledger (api.metrics.LatencyFlusher).
    latency_flusher: Any = None
    #: Sign-on (api.signon.SignOn) when `auth.mode = "oidc"`; None: addresses only.
    signon: Any = None
    #: The role map: config plus the Dev page's entries (api.rolemap.RoleMap), with sign-on.
    role_map: Any = None

    def close(self, timeout: float = 30.0) -> None:
        """Stop the snapshot watch, wait for a background sync and the download warm-up to
        finish, then close the query engine."""
        if self.snapshot_watch is not None:
            self.snapshot_watch.close(min(timeout, 5.0))
        if self.allow_list_listener is not None:
            self.allow_list_listener.close()
        if self.latency_flusher is not None:
            self.latency_flusher.close()
        self.launcher.join(timeout)
        if self.exports is not None:
            self.exports.close(timeout)
        close = getattr(self.reader, "close", None)
        if close is not None:
            close()


def build_services(settings: Settings, **overrides: Any) -> Services:
    """The production collaborators for `settings`; keyword arguments replace any of them."""
    gateway = overrides.pop("gateway", None) or LedgerGateway(settings)
    allow = overrides.pop("allow_list", None) or AllowList(
        gateway.allow_list, refresh_s=float(api_setting(settings, "api_allowlist_refresh_s")),
        allow_loopback=bool(api_setting(settings, "api_allow_loopback")),
        backup=settings.data_dir / "api" / "allow_list.json",
    )
    rate = overrides.pop("dev_rate", None) or RateLimiter(
        float(api_setting(settings, "api_dev_rate_per_minute")))
    reader = overrides.pop("reader", None)
    if reader is None:
        from api.v1 import make_reader
        reader = make_reader(settings)
    resolver = overrides.pop("snapshots", None) or getattr(reader, "resolver", None) or Resolver(
        settings.snapshots_path)
    watch = overrides.pop("snapshot_watch", None) or SnapshotWatch(
        resolver, interval_s=float(api_setting(settings, "api_snapshot_check_s")),
        notify=_webhook(settings), schema=settings.schema)
    svc = Services(
        settings=settings, gateway=gateway, allow_list=allow, dev_rate=rate,
        metrics=overrides.pop("metrics", None) or Metrics(),
        launcher=overrides.pop("launcher", None) or SyncLauncher(settings, gateway),
        snapshots=resolver, reader=reader,
        responses=overrides.pop("responses", None) or ResponseCache(
            int(float(api_setting(settings, "api_response_cache_mb")) * 1024 * 1024)),
        exports=overrides.pop("exports", None) or ExportCache(
            settings.data_dir / "api" / "exports",
            int(float(api_setting(settings, "api_export_cache_mb")) * 1024 * 1024)),
        snapshot_watch=watch,
        **overrides,
    )
    if settings.auth.oidc and svc.signon is None:
        from api.rolemap import RoleMap
        from api.signon import SignOn
        role_map = svc.role_map or RoleMap(settings.auth.roles, gateway.roles,
                                           backup=settings.data_dir / "api" / "role_map.json")
        role_map.load()
        object.__setattr__(svc, "role_map", role_map)
        object.__setattr__(svc, "signon", SignOn(settings.auth, check_token=gateway.check_token,
                                                  check_key=gateway.check_key,
                                                  rules=role_map.rules))
    allow.load()
    watch.start()
    save = getattr(gateway, "save_latency", None)
    if save is not None and svc.latency_flusher is None:
        object.__setattr__(svc, "latency_flusher", LatencyFlusher(svc.metrics, save).start())
    listen = getattr(gateway, "listen_allow_list", None)
    if svc.signon is not None and hasattr(gateway, "listen_changes"):
        from ledger.access import ALLOW_LIST_CHANNEL
        from ledger.roles import ROLES_CHANNEL
        from ledger.tokens import TOKENS_CHANNEL
        handlers = {ALLOW_LIST_CHANNEL: allow.load, TOKENS_CHANNEL: svc.signon.forget,
                    ROLES_CHANNEL: svc.role_map.load}
        listen = lambda _changed, stop: gateway.listen_changes(handlers, stop)  # noqa: E731
    if listen is not None and svc.allow_list_listener is None:
        object.__setattr__(svc, "allow_list_listener", AllowListListener(listen, allow).start())
    return svc


def _webhook(settings: Settings) -> Callable[[dict[str, Any]], None] | None:
    """Alerts go where the scheduler's do (`sla_webhook_url`); None when none is configured."""
    url = getattr(settings, "sla_webhook_url", None)
    if not url:
        return None
    from scheduler.alerts import post_json
    timeout = float(getattr(settings, "sla_webhook_timeout_s", 10.0))
    return lambda body: post_json(url, body, timeout)
