"""Running the app under waitress: the options, the bind check, and a stoppable server
(for `fmw serve`, the tests and the benchmark).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from api.services import api_setting
from fmw.errors import ConfigError
from fmw.net import is_loopback
from fmw.settings import Settings

log = logging.getLogger(__name__)

#: Which forwarding headers waitress may take from the trusted proxy (Nginx on this machine).
TRUSTED_PROXY_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-proto"})


def check_bind(settings: Settings, host: str) -> None:
    """Refuse a non-loopback address unless `api_allow_public_bind` is set; warn when it is.

    Raises:
        ConfigError: binding `host` needs the setting.
    """
    if is_loopback(host):
        return
    if not api_setting(settings, "api_allow_public_bind"):
        raise ConfigError(f"refusing to listen on {host}, which is not a loopback address: set "
                          "api_allow_public_bind = true (FMW_API_ALLOW_PUBLIC_BIND=1) to allow "
                          "it, or keep 127.0.0.1 behind Nginx")
    log.warning("the API listens on %s, reachable from other machines; only the allow list "
                "and API keys stand between it and the network", host)


def waitress_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """Keyword arguments for `waitress.create_server` / `waitress.serve`."""
    opts: dict[str, Any] = {
        "host": host, "port": port, "ident": "fmw",
        "threads": int(api_setting(settings, "api_threads")),
        "connection_limit": int(api_setting(settings, "api_connection_limit")),
        "channel_timeout": int(api_setting(settings, "api_channel_timeout_s")),
        # waitress cuts off only bodies far over the limit; the app answers the rest with a
        # problem JSON 413
        "max_request_body_size": 4 * int(api_setting(settings, "api_max_body_bytes")) + 65_536,
        "max_request_header_size": 65_536,
        "backlog": 1024,
        "clear_untrusted_proxy_headers": True,
    }
    proxy = api_setting(settings, "api_trusted_proxy")
    if proxy:
        if str(proxy) != "127.0.0.1":
            raise ConfigError(f"api_trusted_proxy must be 127.0.0.1 (Nginx on this machine), "
                              f"got {proxy!r}")
        opts["trusted_proxy"] = "127.0.0.1"
        opts["trusted_proxy_count"] = 1
        opts["trusted_proxy_headers"] = set(TRUSTED_PROXY_HEADERS)
    return opts


@dataclass
class RunningServer:
    """A waitress server serving in a background thread until `stop()`."""

    server: Any
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        srv = self.server
        srv.was_shutdown = True
        # Close every channel from outside the loop: the loop then finds an empty map and ends.
        for ch in list(srv._map.values()):
            try:
                ch.close()
            except Exception:  # noqa: S110 - a channel may already be closing
                pass
        srv.task_dispatcher.shutdown(timeout=timeout)
        self.thread.join(timeout)


def start(app: Any, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `app` on host:port (0 = an ephemeral port) in a daemon thread."""
    from waitress.server import create_server
    check_bind(settings, host)
    opts = waitress_options(settings, host, port)
    server = create_server(app, **opts)
    thread = threading.Thread(target=_run, args=(server,), name="fmw-waitress", daemon=True)
    thread.start()
    return RunningServer(server, thread, host, int(server.effective_port))


def _run(server: Any) -> None:
    try:
        server.run()
    except (OSError, ValueError):
        if not getattr(server, "was_shutdown", False):
            raise


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve in the foreground until interrupted (`fmw serve`)."""
    from waitress import serve as waitress_serve

    from api.app import create_app
    from api.services import build_services
    host = host or str(api_setting(settings, "api_host"))
    port = int(port if port is not None else api_setting(settings, "api_port"))
    check_bind(settings, host)
    services = build_services(settings)
    app = create_app(settings, services)
    opts = waitress_options(settings, host, port)
    log.info("FMW API on http://%s:%s (docs: /api/docs)", host, port)
    try:
        waitress_serve(app, **opts)
    finally:
        services.close()
