"""The scheduler's and service host's settings, with their defaults.

Read with `getattr(settings, name, default)` (see `ops_setting`) so this room works whether or
not `fmw.settings.Settings` declares them yet; `OpsConfig.from_settings` validates them once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fmw.errors import ConfigError
from fmw.settings import Settings

#: name -> default of every setting this room reads (env var: FMW_ + upper-case name).
OPS_DEFAULTS: dict[str, Any] = {
    "schedule_cron": "0 6 * * *",
    "schedule_interval_minutes": 0,
    "schedule_timezone": None,
    "schedule_misfire_grace_s": 3600,
    "schedule_catch_up": True,
    "sync_retries": 3,
    "sync_retry_delay_s": 30.0,
    "sync_retry_max_delay_s": 600.0,
    "sla_check_interval_s": 60,
    "sla_webhook_url": None,
    "sla_webhook_timeout_s": 10.0,
    "sla_notify_resolved": True,
    "service_stop_grace_s": 20.0,
    "pg_watch_interval_s": 10.0,
    "digest_time": "07:30",
}

_OFF = ("", "off", "none", "false", "0")


def ops_setting(settings: Settings, name: str) -> Any:
    value = getattr(settings, name, None)
    return OPS_DEFAULTS[name] if value is None else value


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off for transient failures: `retries` more attempts after the first, waiting
    `delay_s`, then twice that, ... capped at `max_delay_s`."""

    retries: int = 3
    delay_s: float = 30.0
    max_delay_s: float = 600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay_s, self.delay_s * (2 ** (attempt - 1))))


@dataclass(frozen=True)
class OpsConfig:
    """Validated scheduler settings (built once by the service host; tests build their own)."""

    cron: str | None = "0 6 * * *"
    interval: timedelta | None = None
    timezone: str = "UTC"  # the zone the cron expression is read in; APScheduler runs in UTC
    misfire_grace_s: int = 3600
    catch_up: bool = True
    retry: RetryPolicy = RetryPolicy()
    sla_interval_s: float = 60.0
    webhook_url: str | None = None
    webhook_timeout_s: float = 10.0
    notify_resolved: bool = True
    stop_grace_s: float = 20.0
    leader_retry_s: float = 30.0
    pg_watch_s: float = 10.0
    #: When the daily digest goes to the webhook (local time in `timezone`); None: off.
    digest_at: time | None = time(7, 30)

    def with_(self, **changes: Any) -> OpsConfig:
        return replace(self, **changes)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpsConfig:
        """Raises: ConfigError naming the setting."""
        cron_raw = ops_setting(settings, "schedule_cron")
        cron = None if str(cron_raw).strip().lower() in _OFF else str(cron_raw).strip()
        if cron is not None:
            validate_cron(cron)
        minutes = _number(settings, "schedule_interval_minutes", float, 0)
        tz = str(ops_setting(settings, "schedule_timezone") or settings.timezone)
        try:
            ZoneInfo(tz)
        except Exception as exc:
            raise ConfigError(f"schedule_timezone {tz!r} is not a known IANA zone") from exc
        url = ops_setting(settings, "sla_webhook_url") or None
        if url is not None and not str(url).startswith(("http://", "https://")):
            raise ConfigError(f"sla_webhook_url must be an http(s) URL, got {url!r}")
        return cls(
            cron=cron,
            interval=timedelta(minutes=minutes) if minutes else None,
            timezone=tz,
            misfire_grace_s=int(_number(settings, "schedule_misfire_grace_s", int, 1)),
            catch_up=_flag(ops_setting(settings, "schedule_catch_up")),
            retry=RetryPolicy(
                retries=int(_number(settings, "sync_retries", int, 0)),
                delay_s=_number(settings, "sync_retry_delay_s", float, 0),
                max_delay_s=_number(settings, "sync_retry_max_delay_s", float, 0)),
            sla_interval_s=_number(settings, "sla_check_interval_s", float, 1),
            webhook_url=str(url) if url else None,
            webhook_timeout_s=_number(settings, "sla_webhook_timeout_s", float, 0.1),
            notify_resolved=_flag(ops_setting(settings, "sla_notify_resolved")),
            stop_grace_s=_number(settings, "service_stop_grace_s", float, 0),
            pg_watch_s=_number(settings, "pg_watch_interval_s", float, 1),
            digest_at=_digest_time(settings),
        )


def _digest_time(settings: Settings) -> time | None:
    raw = str(ops_setting(settings, "digest_time") or "off").strip().lower()
    if raw in _OFF:
        return None
    try:
        return datetime.strptime(raw, "%H:%M").time()
    except ValueError:
        raise ConfigError(f"digest_time must be HH:MM or 'off', got {raw!r}") from None


def validate_cron(expr: str) -> None:
    """Raises ConfigError unless `expr` is a 5-field crontab expression APScheduler accepts."""
    from apscheduler.triggers.cron import CronTrigger
    if len(expr.split()) != 5:
        raise ConfigError(f"schedule_cron must have 5 fields (minute hour day month weekday), "
                          f"got {expr!r}")
    try:
        CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as exc:
        raise ConfigError(f"schedule_cron {expr!r} is not valid: {exc}") from exc


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _OFF
    return bool(value)


def _number(settings: Settings, name: str, typ: type, low: float) -> Any:
    raw = ops_setting(settings, name)
    try:
        value = typ(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a {typ.__name__}, got {raw!r}") from exc
    if value < low:
        raise ConfigError(f"{name} must be at least {low:g}, got {raw!r}")
    return value
