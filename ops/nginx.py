"""The Nginx front of FMW, rendered from the allow list: a pure function of its inputs.

The rendered file (``fmw.conf``) belongs inside the ``http { }`` block of nginx.conf
(``deploy/nginx/nginx.conf`` includes it). It publishes three paths and denies everything else:

==================  ================  ==========================================================
path                who               upstream
==================  ================  ==========================================================
``/streamlit/``     users and admins  the Streamlit explorer (websocket upgrade, long timeout)
``/api/v1/``        users and admins  the read-only API
``/api/dev/``       admins only       the dev API, rate limited per client address
==================  ================  ==========================================================

The client address is forwarded as ``X-Forwarded-For: $remote_addr`` (overwritten, never
appended, so a client cannot smuggle an address in), and the API trusts that header only from
127.0.0.1 (``api_trusted_proxy``), so both Nginx and the API apply the same allow list.

Slow and greedy clients are Nginx's to stop, not the API's (450 slow partial requests from one
address made a directly exposed API unreachable for everyone): a client gets
``nginx_client_timeout_s`` to send its request headers (the whole header, not per byte), as
long between two reads of its body and between two writes of the answer, and one address
holds at most ``nginx_conn_per_address`` requests at a time (more get 429). Nginx buffers a
request until it is complete, so a slow client never reaches the API.

With ``nginx_tls_cert`` and ``nginx_tls_key`` set, the same server (same paths, allow lists and
limits) listens with TLS on ``nginx_https_port`` and ``nginx_port`` only redirects to it (301,
for anyone: it serves no data). TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, HSTS
(``nginx_hsts_max_age_s``, 0 = none) and every cookie of the upstreams marked Secure and
SameSite=Lax, and HttpOnly except Streamlit's XSRF cookie, which its page script reads (a
double-submit token). No HTTP/2: nginx 1.22 and nginx >= 1.25.1 want it spelled differently,
and the slow-client limits above are proven for HTTP/1.1.
Writing, checking and reloading live in `ops.nginx_run`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fmw.errors import ConfigError, FmwError
from fmw.settings import Settings
from ledger.access import AllowEntry, Network
from ops.config import ops_path, ops_setting

UI_PATH = "/streamlit/"
V1_PATH = "/api/v1/"
DEV_PATH = "/api/dev/"
#: The API's reference, for the people v1 is for (exact paths: nothing else under /api/).
DOC_PATHS = ("/api/openapi.json", "/api/docs")
#: Streamlit keeps one websocket open per browser tab; an idle tab must not be cut off.
UI_READ_TIMEOUT_S = 86_400
#: Full exports (CSV/xlsx of every feature) can take minutes to stream.
API_READ_TIMEOUT_S = 300
DEV_BURST = 20
#: Nginx's shared memory for the per-address counters (~16,000 addresses per MB).
ZONE_SIZE = "10m"
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", "frame-ancestors 'self'"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
#: Mozilla's "intermediate" TLS 1.2 suites without DHE (nginx offers DHE only with a dhparam
#: file); TLS 1.3 suites are OpenSSL's and need no setting.
TLS_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))
#: Streamlit's double-submit XSRF cookie: its page script must read it (HttpOnly would break
#: file uploads and its websocket token), so it gets Secure and SameSite only.
SCRIPT_READ_COOKIES = ("_streamlit_xsrf",)
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"),
                                 ipaddress.ip_network("::1/128"))
_SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9_*.-]{1,253}( [A-Za-z0-9_*.-]{1,253})*$")
#: What a quoted Nginx string cannot hold as is: quotes, escapes, variables, control characters.
_UNSAFE_PATH_RE = re.compile(r'["\\$\x00-\x1f\x7f]')


class NginxError(FmwError):
    """Nginx refused the configuration, or could not be run or reloaded."""

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"nginx {action}: {reason}")


@dataclass(frozen=True)
class ProxyConfig:
    """Everything besides the allow list that shapes the rendered file."""

    listen: str = "0.0.0.0"
    port: int = 80
    server_name: str = "_"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ui_host: str = "127.0.0.1"
    ui_port: int = 8501
    allow_loopback: bool = True
    dev_rate_per_minute: int = 60
    conn_per_address: int = 50
    client_timeout_s: int = 10
    tls_cert: str | None = None  # an absolute path (forward slashes); both or neither
    tls_key: str | None = None
    https_port: int = 443
    hsts_max_age_s: int = 31_536_000

    @property
    def tls(self) -> bool:
        """True when the file has an HTTPS server (cert and key set)."""
        return self.tls_cert is not None and self.tls_key is not None

    @staticmethod
    def from_settings(settings: Settings) -> ProxyConfig:
        """Read the nginx_*, api_* and ui_* settings (see `ops.config`).

        Raises:
            ConfigError: a value is not usable in the Nginx file.
        """
        def num(name: str) -> int:
            value = ops_setting(settings, name)
            try:
                return int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be an integer, got {value!r}") from None

        cfg = ProxyConfig(
            listen=str(ops_setting(settings, "nginx_listen")), port=num("nginx_port"),
            server_name=str(ops_setting(settings, "nginx_server_name")),
            api_host=str(ops_setting(settings, "api_host")), api_port=num("api_port"),
            ui_host=str(ops_setting(settings, "ui_host")), ui_port=num("ui_port"),
            allow_loopback=bool(ops_setting(settings, "nginx_allow_loopback")),
            dev_rate_per_minute=num("nginx_dev_rate_per_minute"),
            conn_per_address=num("nginx_conn_per_address"),
            client_timeout_s=num("nginx_client_timeout_s"),
            https_port=num("nginx_https_port"), hsts_max_age_s=num("nginx_hsts_max_age_s"),
            **_tls_files(settings),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raises ConfigError for a value that would break or change the file's meaning."""
        for name, port in (("nginx_port", self.port), ("api_port", self.api_port),
                           ("ui_port", self.ui_port), ("nginx_https_port", self.https_port)):
            if not 1 <= port <= 65535:
                raise ConfigError(f"{name} must be 1-65535, got {port}")
        if self.listen != "*":
            _address("nginx_listen", self.listen)
        for name, host in (("api_host", self.api_host), ("ui_host", self.ui_host)):
            if host != "localhost":
                _address(name, host)
        if not _SERVER_NAME_RE.match(self.server_name):
            raise ConfigError(f"nginx_server_name must be host names separated by single "
                              f"spaces (or _), got {self.server_name!r}")
        for name, value, high in (
                ("nginx_dev_rate_per_minute", self.dev_rate_per_minute, 100_000),
                ("nginx_conn_per_address", self.conn_per_address, 100_000),
                ("nginx_client_timeout_s", self.client_timeout_s, 3600)):
            if not 1 <= value <= high:
                raise ConfigError(f"{name} must be 1-{high}, got {value}")
        self._validate_tls()

    def _validate_tls(self) -> None:
        for name, value, other in (("nginx_tls_cert", self.tls_cert, self.tls_key),
                                   ("nginx_tls_key", self.tls_key, self.tls_cert)):
            if value is None and other is not None:
                raise ConfigError(f"{name} is not set: HTTPS needs both nginx_tls_cert and "
                                  "nginx_tls_key")
            if value is not None and (_UNSAFE_PATH_RE.search(value) or not value):
                raise ConfigError(f"{name} must be a path without quotes, backslashes, $ or "
                                  f"control characters, got {value!r}")
        if self.tls and self.https_port == self.port:
            raise ConfigError(f"nginx_https_port must differ from nginx_port ({self.port})")
        if not 0 <= self.hsts_max_age_s <= 10 * 31_536_000:
            raise ConfigError(f"nginx_hsts_max_age_s must be 0-315360000, got "
                              f"{self.hsts_max_age_s}")


def _tls_files(settings: Settings) -> dict[str, str | None]:
    """nginx_tls_cert and nginx_tls_key resolved like every ops path (see `ops.config`).

    Raises:
        ConfigError: only one of them is set, or a file does not exist.
    """
    paths = {name: ops_path(settings, name) for name in ("nginx_tls_cert", "nginx_tls_key")}
    given = [name for name, path in paths.items() if path is not None]
    if len(given) == 1:
        missing = "nginx_tls_key" if given == ["nginx_tls_cert"] else "nginx_tls_cert"
        raise ConfigError(f"{given[0]} is set but {missing} is not: HTTPS needs both "
                          "(or neither, for plain HTTP)")
    for name, path in paths.items():
        if path is not None and not path.is_file():
            raise ConfigError(f"{name}: {path} does not exist (or is not a file)")
    return {"tls_cert": _abs(paths["nginx_tls_cert"]), "tls_key": _abs(paths["nginx_tls_key"])}


def _abs(path: Path | None) -> str | None:
    # Forward slashes: Nginx on Windows reads them, and a backslash would be an escape.
    return None if path is None else path.resolve().as_posix()


def _address(name: str, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise ConfigError(f"{name} must be an IP address, got {text!r}") from None


def _hostport(host: str, port: int) -> str:
    return f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"


def _comment(text: str) -> str:
    """A note made safe for a one-line Nginx comment."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return clean[:80] + ("..." if len(clean) > 80 else "")


def _net(net: Network) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _access(entries: Iterable[AllowEntry], roles: tuple[str, ...], loopback: bool,
            indent: str) -> list[str]:
    """allow lines for `roles` (most specific network first), loopback, then deny all."""
    lines = []
    for e in sorted((e for e in entries if e.role in roles),
                    key=lambda e: (e.cidr.version, -e.cidr.prefixlen, int(e.cidr.network_address))):
        note = f"  # {e.role}: {_comment(e.note)}" if e.note else f"  # {e.role}"
        lines.append(f"{indent}allow {_net(e.cidr)};{note}")
    if loopback:
        lines += [f"{indent}allow {_net(n)};  # this machine (nginx_allow_loopback)" for n in LOOPBACK]
    lines.append(f"{indent}deny all;")
    return lines


def _proxy_headers(indent: str) -> list[str]:
    # A location with any proxy_set_header inherits none from the server block, so every
    # location gets the whole set.
    return [f"{indent}proxy_set_header {name} {value};" for name, value in (
        ("Host", "$host"),
        ("X-Forwarded-For", "$remote_addr"),  # overwrite: a client-sent chain is dropped
        ("X-Forwarded-Proto", "$scheme"),
        ("X-Real-IP", "$remote_addr"),
        ("Forwarded", '""'),
        ("X-Forwarded-Host", '""'),
    )]


def render(entries: Sequence[AllowEntry], cfg: ProxyConfig, *, schema: str = "fmw") -> str:
    """The whole ``fmw.conf`` for this allow list (deterministic: same input, same text).

    Args:
        entries: the allow list (`ledger.access.load_allow_list`).
        cfg: listen address, upstreams and limits.
        schema: named in the header comment only.

    Raises:
        ConfigError: `cfg` holds a value Nginx would misread.
    """
    cfg.validate()
    users = sum(1 for e in entries if e.role == "user")
    admins = sum(1 for e in entries if e.role == "admin")
    i1, i2 = "    ", "        "
    out = [
        "# FMW reverse proxy, generated by `fmw nginx render` from the allow list in PostgreSQL",
        f"# (schema {schema!r}): {users} user and {admins} admin entries"
        + ("; this machine is an admin address." if cfg.allow_loopback else "."),
        "# Do not edit: it is rewritten whenever the allow list changes. Include it inside the",
        "# http { } block of nginx.conf (deploy/nginx/nginx.conf does).",
        "",
        f"limit_req_zone $binary_remote_addr zone=fmw_dev:{ZONE_SIZE} "
        f"rate={cfg.dev_rate_per_minute}r/m;",
        f"limit_conn_zone $binary_remote_addr zone=fmw_conn:{ZONE_SIZE};",
        "",
        "upstream fmw_api {",
        f"{i1}server {_hostport(cfg.api_host, cfg.api_port)};",
        f"{i1}keepalive 16;",
        "}",
        "",
        "upstream fmw_ui {",
        f"{i1}server {_hostport(cfg.ui_host, cfg.ui_port)};",
        "}",
        "",
    ]
    if cfg.tls:
        out += _redirect_server(cfg)
    out += [
        "server {",
        f"{i1}listen {_hostport(cfg.listen, cfg.https_port if cfg.tls else cfg.port)}"
        + (" ssl;" if cfg.tls else ";"),
        f"{i1}server_name {cfg.server_name};",
        f"{i1}server_tokens off;",
        f"{i1}client_max_body_size 1m;",
        f"{i1}proxy_hide_header X-Powered-By;",
        "",
    ]
    out += _tls(cfg, i1) + _client_limits(cfg, i1)
    out += [f'{i1}add_header {name} "{value}" always;' for name, value in SECURITY_HEADERS]
    if cfg.tls and cfg.hsts_max_age_s > 0:
        out += [f'{i1}add_header Strict-Transport-Security "max-age={cfg.hsts_max_age_s}" always;']
    all_roles = ("user", "admin")
    out += ["", f"{i1}# The explorer (Streamlit, baseUrlPath = streamlit): users and admins.",
            f"{i1}location = {UI_PATH.rstrip('/')} {{"]
    out += _access(entries, all_roles, cfg.allow_loopback, i2)
    out += [f"{i2}return 301 {UI_PATH};", f"{i1}}}", f"{i1}location {UI_PATH} {{"]
    out += _access(entries, all_roles, cfg.allow_loopback, i2)
    out += [f"{i2}proxy_pass http://fmw_ui;", f"{i2}proxy_http_version 1.1;"]
    out += _proxy_headers(i2)
    out += [f"{i2}proxy_set_header Upgrade $http_upgrade;",
            f'{i2}proxy_set_header Connection "upgrade";',
            f"{i2}proxy_read_timeout {UI_READ_TIMEOUT_S}s;",
            f"{i2}proxy_send_timeout {UI_READ_TIMEOUT_S}s;",
            f"{i2}proxy_buffering off;", f"{i1}}}", ""]
    out += [f"{i1}# The read-only API: users and admins.", f"{i1}location {V1_PATH} {{"]
    out += _access(entries, all_roles, cfg.allow_loopback, i2)
    out += _api_proxy(i2) + [f"{i1}}}", ""]
    out += [f"{i1}# The API's reference (OpenAPI document and docs page): users and admins."]
    for doc in DOC_PATHS:
        out += [f"{i1}location = {doc} {{"]
        out += _access(entries, all_roles, cfg.allow_loopback, i2)
        out += _api_proxy(i2) + [f"{i1}}}"]
    out += [""]
    out += [f"{i1}# The dev API: admins only (and an API key, checked by the API).",
            f"{i1}location {DEV_PATH} {{"]
    out += _access(entries, ("admin",), cfg.allow_loopback, i2)
    out += [f"{i2}limit_req zone=fmw_dev burst={DEV_BURST} nodelay;",
            f"{i2}limit_req_status 429;"]
    out += _api_proxy(i2) + [f"{i1}}}", ""]
    out += [f"{i1}# Everything else.", f"{i1}location / {{", f"{i2}deny all;", f"{i1}}}", "}", ""]
    return "\n".join(out)


def _client_limits(cfg: ProxyConfig, i1: str) -> list[str]:
    return [
        f"{i1}# Slow or greedy clients: a whole request header within the timeout, no longer a",
        f"{i1}# pause in a body or in reading an answer, and a bounded number of requests at a",
        f"{i1}# time per address (users behind one NAT share it: see nginx_conn_per_address).",
        f"{i1}client_header_timeout {cfg.client_timeout_s}s;",
        f"{i1}client_body_timeout {cfg.client_timeout_s}s;",
        f"{i1}send_timeout {cfg.client_timeout_s}s;",
        f"{i1}reset_timedout_connection on;",
        f"{i1}limit_conn fmw_conn {cfg.conn_per_address};",
        f"{i1}limit_conn_status 429;",
        "",
    ]


def _redirect_server(cfg: ProxyConfig) -> list[str]:
    """The plain-HTTP server when TLS is on: a 301 to the same URL over HTTPS, for anyone."""
    i1 = "    "
    port = "" if cfg.https_port == 443 else f":{cfg.https_port}"
    return [
        "# HTTP only sends everyone to HTTPS; it serves no data (the allow lists apply there).",
        "server {",
        f"{i1}listen {_hostport(cfg.listen, cfg.port)};",
        f"{i1}server_name {cfg.server_name};",
        f"{i1}server_tokens off;",
        "",
        *_client_limits(cfg, i1),
        f"{i1}return 301 https://$host{port}$request_uri;",
        "}",
        "",
    ]


def _tls(cfg: ProxyConfig, i1: str) -> list[str]:
    if not cfg.tls:
        return []
    flags = "secure samesite=lax"
    return [
        f"{i1}# HTTPS (nginx_tls_cert, nginx_tls_key): TLS 1.2 and 1.3 only, forward secrecy.",
        f'{i1}ssl_certificate "{cfg.tls_cert}";',
        f'{i1}ssl_certificate_key "{cfg.tls_key}";',
        f"{i1}ssl_protocols TLSv1.2 TLSv1.3;",
        f"{i1}ssl_ciphers {TLS_CIPHERS};",
        f"{i1}ssl_prefer_server_ciphers off;",
        f"{i1}ssl_session_cache shared:fmw_tls:{ZONE_SIZE};",
        f"{i1}ssl_session_timeout 1d;",
        f"{i1}ssl_session_tickets off;",
        "",
        f"{i1}# Every cookie of the API and the explorer is Secure, SameSite=Lax and HttpOnly,",
        f"{i1}# but the XSRF cookie Streamlit's page script reads (the first match applies).",
        *(f"{i1}proxy_cookie_flags {name} {flags};" for name in SCRIPT_READ_COOKIES),
        f"{i1}proxy_cookie_flags ~ {flags} httponly;",
        "",
    ]


def _api_proxy(indent: str) -> list[str]:
    return ([f"{indent}proxy_pass http://fmw_api;", f"{indent}proxy_http_version 1.1;"]
            + _proxy_headers(indent)
            + [f'{indent}proxy_set_header Connection "";',
               f"{indent}proxy_read_timeout {API_READ_TIMEOUT_S}s;",
               f"{indent}proxy_buffering off;"])


def main_conf(include: Path, work_dir: Path, *, daemon: bool = False,
              user: str | None = None) -> str:
    """A minimal nginx.conf that includes `include`, with every path inside `work_dir`.

    Used to check a rendered file on its own (`nginx -t`) and to run a private Nginx in tests;
    nothing in it needs root.
    """
    w = work_dir.as_posix()
    lines = [
        "worker_processes 1;",
        f"daemon {'on' if daemon else 'off'};",
        f'pid "{w}/nginx.pid";',
        f'error_log "{w}/error.log" info;',
    ]
    if user:
        lines.append(f"user {user};")
    lines += [
        "events { worker_connections 256; }",
        "http {",
        f'    access_log "{w}/access.log";',
        f'    client_body_temp_path "{w}/client_body";',
        f'    proxy_temp_path "{w}/proxy";',
        f'    fastcgi_temp_path "{w}/fastcgi";',
        f'    uwsgi_temp_path "{w}/uwsgi";',
        f'    scgi_temp_path "{w}/scgi";',
        f'    include "{include.as_posix()}";',
        "}",
        "",
    ]
    return "\n".join(lines)
