"""The operations settings and their defaults.

They are read with `getattr(settings, name, default)` so this package works whether or not
`fmw.settings.Settings` declares them yet (the same convention as `api.services.api_setting`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fmw.settings import Settings

#: name -> default of every setting `ops` reads (api_host/api_port are the API's own).
OPS_DEFAULTS: dict[str, Any] = {
    "api_host": "127.0.0.1",
    "api_port": 8000,
    "ui_host": "127.0.0.1",
    "ui_port": 8501,
    "nginx_listen": "0.0.0.0",
    "nginx_port": 80,
    "nginx_server_name": "_",
    "nginx_conf": "deploy/nginx/fmw.conf",
    "nginx_exe": "nginx",
    "nginx_prefix": None,
    "nginx_main_conf": None,
    "nginx_reload": False,
    "nginx_allow_loopback": True,
    "nginx_dev_rate_per_minute": 60,
    "nginx_conn_per_address": 50,
    "nginx_client_timeout_s": 10,
    "nginx_tls_cert": None,  # None (with nginx_tls_key): plain HTTP only
    "nginx_tls_key": None,
    "nginx_https_port": 443,
    "nginx_hsts_max_age_s": 31_536_000,
    "backup_dir": None,  # None: <data_dir>/backups
    "backup_copy_dir": None,  # None: no second copy (fmw status warns)
    "backup_keep_days": 14,
    "backup_keep_count": 7,
    "pg_bin_dir": None,  # None: the embedded server's binaries, else PATH
    "smoke_url": None,  # None: http://<api_host>:<api_port>
    "smoke_key_file": None,
    "snapshot_max_age_hours": 26.0,
    "disk_min_free_gb": 5.0,
}


def ops_setting(settings: Settings, name: str) -> Any:
    """The setting `name`, or its default when `Settings` does not declare it (or it is None)."""
    value = getattr(settings, name, None)
    return OPS_DEFAULTS[name] if value is None else value


def base_dir(settings: Settings) -> Path:
    """Where relative paths in settings are resolved: the config file's folder, else cwd."""
    return settings.config_path.parent if settings.config_path is not None else Path.cwd()


def ops_path(settings: Settings, name: str) -> Path | None:
    """A path setting resolved against `base_dir` (None when unset and without default)."""
    value = ops_setting(settings, name)
    if value is None or value == "":
        return None
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base_dir(settings) / p


def backup_root(settings: Settings) -> Path:
    """`backup_dir`, default `<data_dir>/backups`."""
    return ops_path(settings, "backup_dir") or settings.data_dir / "backups"


def backup_copy_root(settings: Settings) -> Path | None:
    """`backup_copy_dir`: a second place (another disk, a network share) every backup is
    copied to; None when not configured."""
    return ops_path(settings, "backup_copy_dir")


def api_base_url(settings: Settings) -> str:
    """`smoke_url`, default the API's own address (`http://api_host:api_port`)."""
    url = ops_setting(settings, "smoke_url")
    if url:
        return str(url).rstrip("/")
    host = str(ops_setting(settings, "api_host"))
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{int(ops_setting(settings, 'api_port'))}"


def with_values(settings: Settings, **values: Any) -> Settings:
    """`settings` with `values` replaced."""
    return dataclasses.replace(settings, **values)
