"""The admins' daily digest: `fmw status` as one webhook message (issue 13).

Runs, bad rows open/new/fixed, SLA state, incidents, backups and the restore rehearsal, disk
and the API's p95: exactly the lines `fmw status` shows, so the daily check is reading one
message. Sent by the scheduler at `digest_time` (local time) and by `fmw digest --send`.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from fmw.settings import Settings
from ops.status import Line, assess, gather, limits_from

_MARK = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}


def compose(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """The digest as a webhook body: `text` (chat tools show it) and the lines as data."""
    lines = assess(gather(settings, now), limits_from(settings))
    return body_of(lines, settings.schema, now or datetime.now(UTC))


def body_of(lines: list[Line], schema: str, now: datetime) -> dict[str, Any]:
    counts = {lvl: sum(1 for ln in lines if ln.level == lvl) for lvl in ("ok", "warn", "fail")}
    worst = "fail" if counts["fail"] else "warn" if counts["warn"] else "ok"
    head = (f"FMW daily digest {now:%Y-%m-%d} [{socket.gethostname()}, schema {schema}]: "
            f"{counts['fail']} FAIL, {counts['warn']} WARN, {counts['ok']} OK")
    text = "\n".join([head, *(f"{_MARK[ln.level]} {ln.section}: {ln.text}" for ln in lines)])
    return {"text": text, "event": "daily_digest", "level": worst, "counts": counts,
            "lines": [{"section": ln.section, "level": ln.level, "text": ln.text}
                      for ln in lines]}


def send(settings: Settings) -> dict[str, Any]:
    """Compose and post the digest to `sla_webhook_url`.

    Raises:
        WebhookError: not delivered; ConfigError: no webhook configured.
    """
    from fmw.errors import ConfigError
    from scheduler.alerts import post_json
    url = getattr(settings, "sla_webhook_url", None)
    if not url:
        raise ConfigError("no sla_webhook_url is configured: the digest has nowhere to go")
    body = compose(settings)
    post_json(str(url), body, float(getattr(settings, "sla_webhook_timeout_s", None) or 10.0))
    return body
