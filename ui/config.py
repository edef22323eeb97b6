"""The explorer's settings, read with `getattr(settings, name, default)`.

`fmw.settings.Settings` may or may not declare the ``ui_*`` fields yet; every value here has a
default so the explorer runs either way. `UiConfig` is what crosses into the Streamlit process
(as JSON on its command line: nothing secret is in it).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from fmw.errors import ConfigError
from fmw.settings import Settings

#: setting name -> (default, environment variable) of every setting the explorer reads.
UI_SETTINGS: dict[str, tuple[Any, str]] = {
    "ui_host": ("127.0.0.1", "FMW_UI_HOST"),
    "ui_port": (8501, "FMW_UI_PORT"),
    "ui_base_url_path": ("", "FMW_UI_BASE_URL_PATH"),
    "ui_stale_hours": (26.0, "FMW_UI_STALE_HOURS"),
    "ui_sql_max_rows": (10_000, "FMW_UI_SQL_MAX_ROWS"),
    "ui_sql_timeout_s": (30.0, "FMW_UI_SQL_TIMEOUT_S"),
    "ui_sql_max_bytes": (67_108_864, "FMW_UI_SQL_MAX_BYTES"),
    "ui_api_url": (None, "FMW_UI_API_URL"),
    "ui_page_size": (100, "FMW_UI_PAGE_SIZE"),
    "ui_usage_flush_s": (60.0, "FMW_UI_USAGE_FLUSH_S"),
    "ui_team_size": (20, "FMW_UI_TEAM_SIZE"),
    "ui_allow_public_bind": (False, "FMW_UI_ALLOW_PUBLIC_BIND"),
}
_BASE_RE = re.compile(r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")
PAGE_SIZES = (25, 50, 100, 250, 500, 1000)


def ui_setting(settings: Settings, name: str) -> Any:
    """A ``ui_*`` setting, or its default when unset or not declared."""
    value = getattr(settings, name, None)
    return UI_SETTINGS[name][0] if value is None else value


def normalise_base_path(path: str | None) -> str:
    """``"/streamlit/"`` -> ``"streamlit"`` (what Streamlit's server.baseUrlPath expects).

    Raises:
        ConfigError: characters that do not belong in a URL path.
    """
    text = (path or "").strip().strip("/")
    if text and not _BASE_RE.match(text):
        raise ConfigError(f"ui_base_url_path must be a URL path like '/streamlit/', got {path!r}")
    return text


@dataclass(frozen=True)
class UiConfig:
    """Resolved explorer settings (see `UI_SETTINGS` for names, defaults and env variables)."""

    host: str = "127.0.0.1"
    port: int = 8501
    base_url_path: str = ""
    stale_hours: float = 26.0
    sql_max_rows: int = 10_000
    sql_timeout_s: float = 30.0
    sql_max_bytes: int = 67_108_864
    api_url: str = "http://127.0.0.1:8000"
    page_size: int = 100
    usage_flush_s: float = 60.0
    team_size: int = 20
    timezone: str = "UTC"

    @property
    def url(self) -> str:
        """Where a browser on this machine reaches the explorer (its Streamlit server)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        base = f"/{self.base_url_path}/" if self.base_url_path else "/"
        return f"http://{host}:{self.port}{base}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> UiConfig:
        """Raises: ConfigError: not the JSON `to_json` writes."""
        try:
            raw = json.loads(text)
            known = {f.name for f in fields(UiConfig)}
            return UiConfig(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"bad explorer configuration: {exc}") from None


def ui_config(settings: Settings, *, host: str | None = None, port: int | None = None) -> UiConfig:
    """The explorer's settings from `settings` (CLI `host`/`port` win).

    Raises:
        ConfigError: a value out of range.
    """
    def number(name: str, typ: type, low: float, high: float) -> Any:
        raw = ui_setting(settings, name)
        try:
            value = typ(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a {typ.__name__}, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
        return value

    api_port = getattr(settings, "api_port", None) or 8000
    api_url = ui_setting(settings, "ui_api_url") or f"http://127.0.0.1:{api_port}"
    if not re.match(r"^https?://", str(api_url)):
        raise ConfigError(f"ui_api_url must be an http(s):// URL, got {api_url!r}")
    chosen_port = port if port is not None else number("ui_port", int, 1, 65535)
    if not 0 <= int(chosen_port) <= 65535:
        raise ConfigError(f"the explorer's port must be between 0 and 65535, got {chosen_port}")
    return UiConfig(
        host=host or str(ui_setting(settings, "ui_host")),
        port=int(chosen_port),
        base_url_path=normalise_base_path(str(ui_setting(settings, "ui_base_url_path"))),
        stale_hours=number("ui_stale_hours", float, 0.01, 24 * 366),
        sql_max_rows=number("ui_sql_max_rows", int, 1, 1_000_000),
        sql_timeout_s=number("ui_sql_timeout_s", float, 0.1, 600),
        sql_max_bytes=number("ui_sql_max_bytes", int, 65_536, 1_073_741_824),
        api_url=str(api_url).rstrip("/"),
        page_size=number("ui_page_size", int, 1, 10_000),
        usage_flush_s=number("ui_usage_flush_s", float, 0, 86_400),
        team_size=number("ui_team_size", int, 1, 100_000),
        timezone=settings.timezone,
    )
