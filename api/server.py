"""Running the app under waitress: the options, the bind check, and a stoppable server
(for `fmw serve`, the tests and the benchmark).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from api.services import api_setting
from fmw.errors import ConfigError
from fmw.net import forget_listening, is_loopback, note_listening
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


def _channel_class() -> type:
    """waitress's HTTP channel, without its main loop spinning while a worker writes.

    waitress keeps a channel "writable" while its output buffer holds bytes, even when the
    worker answering on it holds the buffer's lock (it is sending them itself): the main loop
    then wakes on that socket again and again without sending anything, holding the GIL the
    worker needs to finish. Under load (every worker busy) this fed on itself: the main
    thread used 2-7 ms of CPU per request and throughput halved (200 clients: 90-140
    instead of 250 requests/s). Here such a channel is not writable while its lock is held
    and its buffer is under the high-water mark (above it the worker waits for the main loop
    to drain the buffer, and the lock is free); a worker that leaves bytes behind wakes the
    main loop after releasing the lock, and waitress wakes it when a task ends.
    """
    from waitress.channel import HTTPChannel

    class Channel(HTTPChannel):
        def writable(self) -> bool:
            if (self.requests and self.total_outbufs_len and not self.will_close
                    and not self.close_when_flushed
                    and self.total_outbufs_len <= self.adj.outbuf_high_watermark):
                if not self.outbuf_lock.acquire(False):
                    return False  # the worker holds it: it flushes, or wakes us after
                self.outbuf_lock.release()
            return bool(super().writable())

        def write_soon(self, data: bytes) -> int:
            n = int(super().write_soon(data))
            if self.total_outbufs_len:  # the socket did not take it all: flush from the loop
                self.server.pull_trigger()
            return n

    return Channel


def use_channel(server: Any) -> Any:
    """Give a waitress server (from `create_server`) the channel class above."""
    channel = _channel_class()
    for srv in [server, *getattr(server, "servers", ())]:
        if hasattr(srv, "channel_class"):
            srv.channel_class = channel
    return server


class QueueWarnings(logging.Filter):
    """Lets one "Task queue depth is N" warning of waitress through per `interval_s`.

    Waitress logs it, while holding its task queue lock, for every request that arrives when
    every worker thread is busy: under load that is one log line per request, and every worker
    waits for each write. One line a minute still tells an admin the server is saturated.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__("waitress.queue")
        self.interval_s = interval_s
        self._last = float("-inf")
        self._held = 0
        self._deepest = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        depth = record.args[0] if isinstance(record.args, tuple) and record.args else 0
        now = time.monotonic()
        with self._lock:
            self._deepest = max(self._deepest, depth if isinstance(depth, int) else 0)
            if now - self._last < self.interval_s:
                self._held += 1
                return False
            if self._held:
                record.msg = (f"{record.getMessage()} (deepest {self._deepest}; {self._held} "
                              f"more such warnings in the last {self.interval_s:g} s not shown)")
                record.args = ()
            self._last, self._held, self._deepest = now, 0, 0
            return True


def throttle_queue_warnings(interval_s: float = 60.0) -> None:
    """Install `QueueWarnings` on waitress's queue logger, once per process."""
    logger = logging.getLogger("waitress.queue")
    if not any(isinstance(f, QueueWarnings) for f in logger.filters):
        logger.addFilter(QueueWarnings(interval_s))


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
    throttle_queue_warnings()
    server = use_channel(create_server(app, **opts))
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
    from waitress.server import create_server

    from api.app import create_app
    from api.services import build_services
    host = host or str(api_setting(settings, "api_host"))
    port = int(port if port is not None else api_setting(settings, "api_port"))
    check_bind(settings, host)
    services = build_services(settings)
    app = create_app(settings, services)
    opts = waitress_options(settings, host, port)
    throttle_queue_warnings()
    log.info("FMW API on http://%s:%s (docs: /api/docs)", host, port)
    server = use_channel(create_server(app, **opts))
    note_listening(settings.data_dir, host, port)  # for `fmw nginx render`'s port check
    try:
        server.run()
    finally:
        forget_listening(settings.data_dir)
        services.close()
