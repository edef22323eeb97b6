"""Settings: one frozen dataclass built in one place from `fmw.toml` plus environment overrides.

No other module reads ``os.environ``; everything is passed in from here.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

from fmw.authconfig import AuthConfig, parse_auth
from fmw.errors import ConfigError
from fmw.tunables import NAMES as TUNABLE_NAMES
from fmw.tunables import parse_tunables

SyncMode = Literal["full", "incremental"]
SourceKind = Literal["csv", "xlsx", "json", "jsonl", "parquet", "sql", "http"]

#: Canonical fields a source can map; `source` is always the source's own name.
CANONICAL_FIELDS: tuple[str, ...] = (
    "feature_group", "feature_name", "mcc", "mnc", "status", "value", "owner",
    "notes", "operator", "source_updated_at",
)
DEFAULT_IDENTITY: tuple[str, ...] = ("feature_group", "feature_name", "mcc", "mnc")
IDENTITY_FIELDS_ALLOWED: tuple[str, ...] = (
    "feature_group", "feature_name", "mcc", "mnc", "value", "owner", "operator",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class SourceConfig:
    """One configured source. `columns` maps canonical field -> source column name."""

    name: str
    kind: SourceKind
    mode: SyncMode = "full"
    path: Path | None = None
    url: str | None = None
    query: str | None = None
    format: Literal["json", "csv"] | None = None
    encoding: str = "auto"
    delimiter: str = ","
    sheet: str | None = None
    records_path: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 60.0
    allow_empty: bool = False
    identity: tuple[str, ...] = DEFAULT_IDENTITY
    columns: tuple[tuple[str, str], ...] = ()
    constants: tuple[tuple[str, str], ...] = ()

    @property
    def column_map(self) -> dict[str, str]:
        return dict(self.columns)

    @property
    def constant_map(self) -> dict[str, str]:
        return dict(self.constants)

    @property
    def location(self) -> str:
        """Human-readable location used in error messages."""
        if self.path is not None:
            return str(self.path)
        return _redact_url(self.url or "")  # never show a password in a message


@dataclass(frozen=True)
class Settings:
    """Everything FMW needs to know, resolved to absolute paths."""

    data_dir: Path
    config_path: Path | None = None
    database_url: str | None = None
    schema: str = "fmw"
    timezone: str = "UTC"
    max_bad_share: float = 0.05
    snapshots_dir: Path | None = None
    sources: tuple[SourceConfig, ...] = ()
    progress: bool = True
    # Simple settings parsed through fmw.tunables (FMW_<NAME> in the environment).
    snapshot_keep: int = 5
    snapshot_grace_hours: float = 24.0
    changes_window_days: int = 90
    duckdb_threads: int = 2
    duckdb_memory_limit: str = "1GB"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_allow_public_bind: bool = False
    api_threads: int = 8
    api_connection_limit: int = 400
    api_channel_timeout_s: int = 120
    api_trusted_proxy: str | None = None
    api_allow_loopback: bool = True
    api_allowlist_refresh_s: float = 30.0
    api_dev_rate_per_minute: int = 120
    api_max_body_bytes: int = 1_048_576
    api_max_query_chars: int = 8192
    api_response_cache_mb: float = 64.0
    api_export_cache_mb: float = 4096.0
    api_warm_downloads: bool = True
    api_snapshot_check_s: float = 300.0
    schedule_cron: str = "0 6 * * *"
    schedule_interval_minutes: float = 0.0
    schedule_timezone: str | None = None
    schedule_misfire_grace_s: int = 3600
    schedule_catch_up: bool = True
    sync_retries: int = 3
    sync_retry_delay_s: float = 30.0
    sync_retry_max_delay_s: float = 600.0
    sla_check_interval_s: float = 60.0
    sla_webhook_url: str | None = None
    digest_time: str = "07:30"
    sla_webhook_timeout_s: float = 10.0
    sla_notify_resolved: bool = True
    service_stop_grace_s: float = 20.0
    pg_watch_interval_s: float = 10.0
    ui_host: str = "127.0.0.1"
    ui_port: int = 8501
    ui_base_url_path: str = ""
    ui_allow_public_bind: bool = False
    ui_stale_hours: float = 26.0
    ui_sql_max_rows: int = 10_000
    ui_sql_timeout_s: float = 30.0
    ui_sql_max_bytes: int = 67_108_864
    ui_api_url: str | None = None
    ui_page_size: int = 100
    ui_usage_flush_s: float = 60.0
    ui_team_size: int = 20
    nginx_listen: str = "0.0.0.0"
    nginx_port: int = 80
    nginx_server_name: str = "_"
    nginx_conf: str = "deploy/nginx/fmw.conf"
    nginx_exe: str = "nginx"
    nginx_prefix: str | None = None
    nginx_main_conf: str | None = None
    nginx_reload: bool = False
    nginx_allow_loopback: bool = True
    nginx_dev_rate_per_minute: int = 60
    nginx_conn_per_address: int = 50
    nginx_client_timeout_s: int = 10
    # HTTPS (issue 14): both paths set = a TLS server on nginx_https_port, HTTP redirects to it
    nginx_tls_cert: str | None = None
    nginx_tls_key: str | None = None
    nginx_https_port: int = 443
    nginx_hsts_max_age_s: int = 31_536_000
    backup_dir: str | None = None
    backup_copy_dir: str | None = None
    backup_keep_days: float = 14.0
    backup_keep_count: int = 7
    pg_bin_dir: str | None = None
    smoke_url: str | None = None
    smoke_key_file: str | None = None
    snapshot_max_age_hours: float = 26.0
    disk_min_free_gb: float = 5.0
    # Source limits (issue 11): see ledger.sources.base.SourceLimits.
    source_max_cell_bytes: int = 1_048_576
    source_max_columns: int = 1000
    source_max_json_depth: int = 64
    source_max_stored_errors: int = 10_000
    source_allow_symlinks: bool = False
    source_roots: tuple[Path, ...] = ()  # empty: files may be anywhere
    xlsx_max_unpacked_mb: float = 1024.0
    xlsx_max_rows: int = 1_048_576
    # Sign-on, roles and row scopes (issue 14): the `[auth]` table, see fmw.authconfig.
    auth: AuthConfig = AuthConfig()

    @property
    def snapshots_path(self) -> Path:
        """Where snapshots are published (`snapshots_dir`, default `<data_dir>/snapshots`)."""
        return self.snapshots_dir if self.snapshots_dir is not None else self.data_dir / "snapshots"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sources) or "none configured"
        raise ConfigError(f"unknown source {name!r}; configured sources: {known}")

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


#: Query parameters whose value is treated as a secret (``?api_key=``, ``&X-Amz-Signature=``).
SECRET_PARAM_RE = re.compile(r"key|token|secret|passw|pwd|signature|^sig$|auth|credential",
                             re.I)


def _redact_url(url: str) -> str:
    """The URL with its password, an http user-only token and secret query values as ``***``."""
    url = re.sub(r"//([^:/@?#]+):[^@/?#]*@", r"//\1:***@", url)
    url = re.sub(r"^(https?://)[^:/@?#]+@", r"\1***@", url, flags=re.I)

    def param(m: re.Match[str]) -> str:
        return f"{m[1]}{m[2]}=***" if SECRET_PARAM_RE.search(m[2]) and m[3] else m[0]
    return re.sub(r"([?&;])([^=&;#]*)=([^&;#]*)", param, url)


def _get(table: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str,
         default: Any = None) -> Any:
    value = table.get(key, default)
    if value is not None and not isinstance(value, typ):
        raise ConfigError(f"{where}.{key} must be {getattr(typ, '__name__', typ)}, "
                          f"got {type(value).__name__}")
    return value


def _str_pairs(table: Any, where: str) -> tuple[tuple[str, str], ...]:
    if table is None:
        return ()
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    out = []
    for k, v in table.items():
        if not isinstance(v, str):
            raise ConfigError(f"{where}.{k} must be a string")
        out.append((str(k), v))
    return tuple(out)


def parse_source(raw: Mapping[str, Any], index: int, base_dir: Path) -> SourceConfig:
    """Validate one ``[[sources]]`` table.

    Raises:
        ConfigError: naming the source and the offending key.
    """
    where = f"sources[{index}]"
    name = _get(raw, "name", str, where)
    if not name or not _NAME_RE.match(name):
        raise ConfigError(f"{where}.name must be 1-64 letters, digits, '_', '.', '-'")
    where = f"source {name!r}"
    kind = _get(raw, "kind", str, where)
    if kind not in get_args(SourceKind):
        raise ConfigError(f"{where}: kind must be one of {', '.join(get_args(SourceKind))}, got {kind!r}")
    mode = _get(raw, "mode", str, where, "full")
    if mode not in get_args(SyncMode):
        raise ConfigError(f"{where}: mode must be 'full' or 'incremental', got {mode!r}")
    columns = _str_pairs(raw.get("columns"), f"{where}.columns")
    constants = _str_pairs(raw.get("constants"), f"{where}.constants")
    for fld, _ in columns + constants:
        if fld not in CANONICAL_FIELDS:
            raise ConfigError(f"{where}: unknown canonical field {fld!r}; "
                              f"valid: {', '.join(CANONICAL_FIELDS)}")
    identity = tuple(_get(raw, "identity", list, where, list(DEFAULT_IDENTITY)))
    if not identity:
        raise ConfigError(f"{where}: identity must name at least one field")
    for fld in identity:
        if fld not in IDENTITY_FIELDS_ALLOWED:
            raise ConfigError(f"{where}: identity field {fld!r} is not allowed; "
                              f"valid: {', '.join(IDENTITY_FIELDS_ALLOWED)}")
    provided = {f for f, _ in columns} | {f for f, _ in constants}
    if columns:
        for fld in identity:
            if fld not in provided:
                raise ConfigError(f"{where}: identity field {fld!r} is neither in columns nor constants")
    path_s = _get(raw, "path", str, where)
    path = None
    if path_s is not None:
        p = Path(path_s).expanduser()
        path = p if p.is_absolute() else (base_dir / p)
    url = _get(raw, "url", str, where)
    query = _get(raw, "query", str, where)
    if kind in ("csv", "xlsx", "json", "jsonl", "parquet") and path is None:
        raise ConfigError(f"{where}: kind {kind!r} needs path")
    if kind == "sql" and (not url or not query):
        raise ConfigError(f"{where}: kind 'sql' needs url (SQLAlchemy URL) and query")
    if kind == "http":
        if not url or not re.match(r"^https?://", url):
            raise ConfigError(f"{where}: kind 'http' needs an http(s) url")
    fmt = _get(raw, "format", str, where)
    if fmt is not None and fmt not in ("json", "csv"):
        raise ConfigError(f"{where}: format must be 'json' or 'csv'")
    encoding = _get(raw, "encoding", str, where, "auto").lower()
    if encoding not in ("auto", "utf-8", "utf8", "utf-8-sig", "cp949", "euc-kr", "euc_kr"):
        raise ConfigError(f"{where}: encoding must be auto, utf-8, utf-8-sig or cp949")
    delimiter = _get(raw, "delimiter", str, where, ",")
    if len(delimiter) != 1:
        raise ConfigError(f"{where}: delimiter must be one character")
    timeout = _get(raw, "timeout_s", (int, float), where, 60.0)
    return SourceConfig(
        name=name, kind=cast(SourceKind, kind), mode=cast(SyncMode, mode), path=path, url=url,
        query=query, format=cast(Any, fmt), encoding=encoding, delimiter=delimiter,
        sheet=_get(raw, "sheet", str, where), records_path=_get(raw, "records_path", str, where),
        headers=_str_pairs(raw.get("headers"), f"{where}.headers"), timeout_s=float(timeout),
        allow_empty=bool(_get(raw, "allow_empty", bool, where, False)),
        identity=identity, columns=columns, constants=constants,
    )


def load_settings(config: Path | str | None = None, data_dir: Path | str | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the config file and the environment.

    Precedence: explicit arguments (CLI options) > environment > config file > defaults.
    The config file is ``--config``, else ``FMW_CONFIG``, else ``./fmw.toml`` if present.

    Raises:
        ConfigError: the file is missing, not TOML, or has an invalid value.
    """
    env = dict(os.environ if environ is None else environ)
    cfg_path: Path | None = None
    if config is not None:
        cfg_path = Path(config)
    elif env.get("FMW_CONFIG"):
        cfg_path = Path(env["FMW_CONFIG"])
    elif Path("fmw.toml").is_file():
        cfg_path = Path("fmw.toml")
    raw: dict[str, Any] = {}
    if cfg_path is not None:
        cfg_path = cfg_path.expanduser().resolve()
        if not cfg_path.is_file():
            raise ConfigError("config file not found", str(cfg_path))
        try:
            raw = tomllib.loads(cfg_path.read_text(encoding="utf-8-sig"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid TOML: {exc}", str(cfg_path)) from exc
    base_dir = cfg_path.parent if cfg_path else Path.cwd()
    try:
        return _build(raw, env, cfg_path, base_dir, data_dir)
    except ConfigError as exc:
        if cfg_path and exc.path is None:
            raise ConfigError(exc.reason, str(cfg_path)) from None
        raise


def _build(raw: dict[str, Any], env: dict[str, str], cfg_path: Path | None, base_dir: Path,
           data_dir_arg: Path | str | None) -> Settings:
    known = {"data_dir", "database_url", "schema", "timezone", "max_bad_share", "snapshots_dir",
             "sources", "progress", "source_roots", "auth"} | TUNABLE_NAMES
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")

    def pick(key: str, env_key: str) -> Any:
        if env.get(env_key):
            return env[env_key]
        return raw.get(key)

    dd = data_dir_arg or pick("data_dir", "FMW_DATA_DIR") or ".fmw"
    data_dir = Path(dd).expanduser()
    if not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    snap = pick("snapshots_dir", "FMW_SNAPSHOTS_DIR")
    snapshots_dir = None
    if snap:
        snapshots_dir = Path(snap).expanduser()
        if not snapshots_dir.is_absolute():
            snapshots_dir = base_dir / snapshots_dir
    schema = str(pick("schema", "FMW_SCHEMA") or "fmw")
    if not _SCHEMA_RE.match(schema):
        raise ConfigError(f"schema must be a lower-case SQL identifier, got {schema!r}")
    tz = str(pick("timezone", "FMW_TIMEZONE") or "UTC")
    try:
        from zoneinfo import ZoneInfo
        ZoneInfo(tz)
    except Exception as exc:
        raise ConfigError(f"timezone {tz!r} is not a known IANA zone") from exc
    share_raw = pick("max_bad_share", "FMW_MAX_BAD_SHARE")
    try:
        share = 0.05 if share_raw is None else float(share_raw)
    except ValueError as exc:
        raise ConfigError(f"max_bad_share must be a number, got {share_raw!r}") from exc
    if not 0 <= share <= 1:
        raise ConfigError(f"max_bad_share must be between 0 and 1, got {share}")
    url = pick("database_url", "FMW_DATABASE_URL") or None
    if url is not None and not re.match(r"^postgres(ql)?(\+\w+)?://", str(url)):
        raise ConfigError("database_url must be a postgresql:// URL (FMW's ledger is PostgreSQL)")
    sources_raw = raw.get("sources", [])
    if not isinstance(sources_raw, list):
        raise ConfigError("sources must be an array of tables ([[sources]])")
    sources = tuple(parse_source(s, i, base_dir) for i, s in enumerate(sources_raw))
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"duplicate source name(s): {', '.join(dupes)}")
    numbers = parse_tunables(pick)
    progress = raw.get("progress", True)
    if env.get("FMW_PROGRESS"):
        progress = env["FMW_PROGRESS"].lower() not in ("0", "false", "no", "off")
    return Settings(
        data_dir=data_dir.resolve(), config_path=cfg_path, database_url=url, schema=schema,
        timezone=tz, max_bad_share=share, snapshots_dir=snapshots_dir, sources=sources,
        progress=bool(progress), source_roots=_source_roots(pick, base_dir),
        auth=parse_auth(raw.get("auth"), env, base_dir), **numbers,
    )


def _source_roots(pick: Any, base_dir: Path) -> tuple[Path, ...]:
    """`source_roots`: a TOML array of folders, or FMW_SOURCE_ROOTS split on os.pathsep."""
    value = pick("source_roots", "FMW_SOURCE_ROOTS")
    if value is None:
        return ()
    items = value.split(os.pathsep) if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError("source_roots must be an array of folder paths")
    roots = []
    for item in (i.strip() for i in items if i.strip()):
        p = Path(item).expanduser()
        roots.append((p if p.is_absolute() else base_dir / p).resolve())
    return tuple(roots)
