"""Simple settings (numbers, flags, short strings): how each is parsed from TOML or FMW_<NAME>.

Defaults live on `fmw.settings.Settings` (one place); this table says how to read and check a
value when the config file or the environment gives one. `tests/fmw/test_settings.py` checks
that every entry is a Settings field and is documented in the README.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fmw.errors import ConfigError

Kind = Literal["int", "float", "bool", "str", "optstr"]
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Tunable:
    name: str
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    hint: str = ""

    @property
    def env(self) -> str:
        return "FMW_" + self.name.upper()


_MEM = r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"
_URL = r"^https?://\S+$"

TUNABLES: tuple[Tunable, ...] = (
    # snapshots and the query layer
    Tunable("snapshot_keep", "int", 1),
    Tunable("snapshot_grace_hours", "float", 0),
    Tunable("changes_window_days", "int", 1),
    Tunable("duckdb_threads", "int", 1),
    Tunable("duckdb_memory_limit", "str", pattern=_MEM, hint="like '1GB'"),
    # the HTTP API
    Tunable("api_host", "str"),
    Tunable("api_port", "int", 1, 65535),
    Tunable("api_allow_public_bind", "bool"),
    Tunable("api_threads", "int", 1),
    Tunable("api_connection_limit", "int", 1),
    Tunable("api_channel_timeout_s", "int", 1),
    Tunable("api_trusted_proxy", "optstr", pattern=r"^127\.0\.0\.1$",
            hint="the exact proxy address, '127.0.0.1'"),
    Tunable("api_allow_loopback", "bool"),
    Tunable("api_allowlist_refresh_s", "float", 1),
    Tunable("api_dev_rate_per_minute", "int", 1),
    Tunable("api_max_body_bytes", "int", 1024),
    Tunable("api_max_query_chars", "int", 256),
    Tunable("api_response_cache_mb", "float", 0),
    Tunable("api_export_cache_mb", "float", 0),
    Tunable("api_warm_downloads", "bool"),
    Tunable("api_snapshot_check_s", "float", 0),
    # scheduler, retries, SLA, service host
    Tunable("schedule_cron", "str", hint="a 5-field crontab, or 'off'"),
    Tunable("schedule_interval_minutes", "float", 0),
    Tunable("schedule_timezone", "optstr"),
    Tunable("schedule_misfire_grace_s", "int", 1),
    Tunable("schedule_catch_up", "bool"),
    Tunable("sync_retries", "int", 0),
    Tunable("sync_retry_delay_s", "float", 0),
    Tunable("sync_retry_max_delay_s", "float", 0),
    Tunable("sla_check_interval_s", "float", 1),
    Tunable("sla_webhook_url", "optstr", pattern=_URL, hint="an http(s) URL"),
    Tunable("digest_time", "str", pattern=r"^(off|([01][0-9]|2[0-3]):[0-5][0-9])$",
            hint="HH:MM (local time) or 'off'"),
    Tunable("sla_webhook_timeout_s", "float", 0.1),
    Tunable("sla_notify_resolved", "bool"),
    Tunable("service_stop_grace_s", "float", 0),
    Tunable("pg_watch_interval_s", "float", 1),
    # the explorer
    Tunable("ui_host", "str"),
    Tunable("ui_port", "int", 1, 65535),
    Tunable("ui_base_url_path", "str", pattern=r"^(/?[A-Za-z0-9._~-]+)*/?$|^$",
            hint="a URL path such as '/streamlit/'"),
    Tunable("ui_allow_public_bind", "bool"),
    Tunable("ui_stale_hours", "float", 0),
    Tunable("ui_sql_max_rows", "int", 1, 1_000_000),
    Tunable("ui_sql_timeout_s", "float", 0.1, 600),
    Tunable("ui_sql_max_bytes", "int", 65_536, 1_073_741_824),
    Tunable("ui_api_url", "optstr", pattern=_URL, hint="an http(s) URL"),
    Tunable("ui_page_size", "int", 1, 10_000),
    Tunable("ui_usage_flush_s", "float", 0),
    Tunable("ui_team_size", "int", 1),
    # nginx, backups, smoke test, status
    Tunable("nginx_listen", "str", pattern=r"^(\*|[0-9a-fA-F.:]+)$", hint="an IP address or '*'"),
    Tunable("nginx_port", "int", 1, 65535),
    Tunable("nginx_server_name", "str"),
    Tunable("nginx_conf", "str"),
    Tunable("nginx_exe", "str"),
    Tunable("nginx_prefix", "optstr"),
    Tunable("nginx_main_conf", "optstr"),
    Tunable("nginx_reload", "bool"),
    Tunable("nginx_allow_loopback", "bool"),
    Tunable("nginx_dev_rate_per_minute", "int", 1, 100_000),
    Tunable("nginx_conn_per_address", "int", 1, 100_000),
    Tunable("nginx_client_timeout_s", "int", 1, 3600),
    Tunable("nginx_tls_cert", "optstr"),
    Tunable("nginx_tls_key", "optstr"),
    Tunable("nginx_https_port", "int", 1, 65535),
    Tunable("nginx_hsts_max_age_s", "int", 0),
    Tunable("backup_dir", "optstr"),
    Tunable("backup_copy_dir", "optstr"),
    Tunable("backup_keep_days", "float", 0),
    Tunable("backup_keep_count", "int", 1),
    Tunable("pg_bin_dir", "optstr"),
    Tunable("smoke_url", "optstr", pattern=_URL, hint="an http(s) URL"),
    Tunable("smoke_key_file", "optstr"),
    Tunable("snapshot_max_age_hours", "float", 0),
    Tunable("disk_min_free_gb", "float", 0),
    # source limits (the reader refuses or quarantines beyond these)
    Tunable("source_max_cell_bytes", "int", 1024),
    Tunable("source_max_columns", "int", 1),
    Tunable("source_max_json_depth", "int", 2, 500),
    Tunable("source_max_stored_errors", "int", 1),
    Tunable("source_allow_symlinks", "bool"),
    Tunable("xlsx_max_unpacked_mb", "float", 1),
    Tunable("xlsx_max_rows", "int", 1),
)
NAMES = frozenset(t.name for t in TUNABLES)


def _parse(t: Tunable, value: Any) -> Any:
    if t.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{t.name} must be true or false, got {value!r}")
    if t.kind in ("int", "float"):
        if isinstance(value, bool):
            raise ConfigError(f"{t.name} must be a number, got {value!r}")
        try:
            number = int(value) if t.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{t.name} must be {'a whole' if t.kind == 'int' else 'a'} number, "
                              f"got {value!r}") from None
        if t.minimum is not None and number < t.minimum:
            raise ConfigError(f"{t.name} must be at least {t.minimum:g}, got {value!r}")
        if t.maximum is not None and number > t.maximum:
            raise ConfigError(f"{t.name} must be at most {t.maximum:g}, got {value!r}")
        return number
    text = str(value).strip()
    if t.kind == "optstr" and text.lower() in ("", "none", "off"):
        return None
    if t.pattern and not re.match(t.pattern, text, re.I):
        raise ConfigError(f"{t.name} must be {t.hint or 'valid'}, got {value!r}")
    return text


def parse_tunables(pick: Callable[[str, str], Any]) -> dict[str, Any]:
    """Values given in the file or environment, parsed and checked (absent ones are left out).

    Raises:
        ConfigError: naming the setting and the bad value.
    """
    out: dict[str, Any] = {}
    for t in TUNABLES:
        value = pick(t.name, t.env)
        if value is not None:
            out[t.name] = _parse(t, value)
    return out
