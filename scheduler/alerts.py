"""SLA alerts: one JSON POST to the configured webhook, and a log line.

The body has a `text` field, which is what Slack and Teams incoming webhooks display; n8n (or
any other receiver) gets the structured fields beside it.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from typing import Any, Literal

from fmw.errors import FmwError, Transient
from ledger.sla import Violation

log = logging.getLogger(__name__)

Event = Literal["opened", "closed"]


class WebhookError(FmwError, Transient):
    """The webhook did not accept the alert (retried at the next SLA check)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"webhook {_redact(url)}: {reason}")


def _redact(url: str) -> str:
    """Incoming-webhook URLs carry their secret in the path: show scheme and host only."""
    head, sep, rest = url.partition("://")
    return f"{head}{sep}{rest.split('/', 1)[0]}/…" if sep else "…"


def payload(v: Violation, event: Event, schema: str) -> dict[str, Any]:
    """The JSON body for one violation event (pure)."""
    host = socket.gethostname()
    if event == "opened":
        text = f"FMW SLA violated: {v.sla_name} ({v.kind}) - {v.detail}"
    else:
        text = f"FMW SLA back to normal: {v.sla_name} ({v.kind}) - {v.close_detail or 'fixed'}"
    return {
        "text": f"{text} [{host}, schema {schema}]",
        "event": f"sla_violation_{event}",
        "sla": v.sla_name, "kind": v.kind, "violation_id": v.id,
        "observed": v.observed, "threshold": v.threshold, "detail": v.detail,
        "opened_at": v.opened_at.isoformat(),
        "closed_at": v.closed_at.isoformat() if v.closed_at else None,
        "close_detail": v.close_detail, "host": host, "schema": schema,
    }


def post_json(url: str, body: dict[str, Any], timeout_s: float = 10.0) -> None:
    """POST `body` as JSON; any 2xx is delivered.

    Raises:
        WebhookError: refused, timed out or answered with a non-2xx status.
    """
    data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "fmw-sla"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read(65_536)
    except urllib.error.HTTPError as exc:
        raise WebhookError(url, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WebhookError(url, f"not delivered: {reason}") from exc
