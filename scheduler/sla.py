"""SLA checks: judge each enabled definition (pure), open or close violations, alert once.

A violation is opened when a check fails and none is open for that SLA; the opener (exactly one
caller, thanks to a unique index) logs it and POSTs it to the webhook. Later failing checks only
refresh what it observes. When a check passes again the violation is closed and, if
`sla_notify_resolved`, a "back to normal" message follows. An alert the webhook did not take
is tried again at the next checks (up to `MAX_ALERT_ATTEMPTS`), never repeated once delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from fmw.settings import Settings
from ledger import incidents, latency, sla
from ledger.db import connect
from ledger.sla import RunFacts, SlaDefinition, Violation
from scheduler.alerts import Event, WebhookError, payload, post_json
from scheduler.config import OpsConfig

log = logging.getLogger(__name__)

MAX_ALERT_ATTEMPTS = 10
V1_PREFIX = "/api/v1"

#: Returns the API's metrics snapshot (`api.metrics.Metrics.snapshot()`), or None.
LatencySource = Callable[[], dict[str, Any] | None]
Sender = Callable[[str, dict[str, Any], float], None]


@dataclass(frozen=True)
class Finding:
    """One SLA judged: ok True/False, or None when it could not be evaluated (and why)."""

    sla: str
    kind: str
    ok: bool | None
    observed: float | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CheckResult:
    findings: tuple[Finding, ...]
    opened: tuple[Violation, ...]
    closed: tuple[Violation, ...]
    alerts_sent: int
    alert_errors: tuple[str, ...]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def evaluate(d: SlaDefinition, facts: RunFacts, metrics: dict[str, Any] | None,
             timezone: str) -> Finding:
    """Judge one definition against the facts (pure)."""
    def found(ok: bool | None, observed: float | None, detail: str) -> Finding:
        return Finding(d.name, d.kind, ok, observed, detail)

    if d.kind == "freshness":
        limit = float(d.threshold or 0)
        if facts.last_success_at is None:
            return found(False, None, "no successful sync yet")
        age = (facts.now - facts.last_success_at).total_seconds()
        ok = age < limit * 3600
        return found(ok, round(age / 3600, 3), f"last successful sync {_hours(age)} ago "
                     f"({'within' if ok else 'over'} {limit:g} h)")
    if d.kind == "daily_deadline":
        assert d.deadline is not None
        local = facts.now.astimezone(ZoneInfo(timezone))
        due = d.deadline.strftime("%H:%M")
        done = facts.first_success_today_at
        if done is not None:
            finished = done.astimezone(ZoneInfo(timezone))
            late = finished.time().replace(tzinfo=None) > d.deadline
            hours = round(finished.hour + finished.minute / 60 + finished.second / 3600, 3)
            return found(not late, hours, f"today's sync finished at "
                         f"{finished.strftime('%H:%M')} {timezone}, "
                         + (f"after the {due} deadline" if late else f"by the {due} deadline"))
        if local.time().replace(tzinfo=None) < d.deadline:
            return found(True, None, f"before today's {due} {timezone} deadline")
        return found(False, None, f"no successful sync today ({facts.today.isoformat()}) by "
                     f"{due} {timezone}")
    if d.kind == "success_rate":
        days = int(d.window_days or 1)
        good, total = facts.window_days.get(days, (0, 0))
        if total == 0:
            return found(None, None, f"no finished syncs in the last {days} days")
        rate = good / total
        limit = float(d.threshold or 0)
        part, bad = facts.window_partial.get(days, (0, 0))
        note = f", {part} of them partial ({bad:,} bad rows)" if part else ""
        return found(rate >= limit, round(rate, 4), f"a sync applied on {good} of {total} days "
                     f"with syncs in the last {days} days{note} ({rate:.1%}; target "
                     f"{limit:.0%})")
    if d.kind == "api_p95":
        return _latency(d, metrics, found)
    return found(None, None, f"unknown SLA kind {d.kind!r}")


def _latency(d: SlaDefinition, metrics: dict[str, Any] | None,
             found: Callable[[bool | None, float | None, str], Finding]) -> Finding:
    if metrics is None:
        return found(None, None, "not evaluated: no API runs in this process (the p95 is kept "
                     "in memory by the API; it is checked inside `fmw service run`)")
    routes = [r for r in metrics.get("routes", []) if str(r.get("route", "")).startswith(V1_PREFIX)
              and int(r.get("window", 0)) >= d.min_samples]
    if not routes:
        return found(None, None, f"not evaluated: no v1 route has {d.min_samples} recent requests")
    worst = max(routes, key=lambda r: float(r.get("p95_ms", 0.0)))
    p95 = float(worst["p95_ms"]) / 1000
    limit = float(d.threshold or 0)
    ok = p95 < limit
    over = metrics.get("source") or f"the last {worst['window']} requests"
    p95_text = f"at most {p95:.3f} s" if metrics.get("bound") else f"{p95:.3f} s"
    return found(ok, round(p95, 4), f"p95 {p95_text} on {worst['method']} {worst['route']} over "
                 f"{over} ({worst['window']:,} requests; {'under' if ok else 'not under'} "
                 f"{limit:g} s)")


#: The window the v1 p95 SLA is judged on from the ledger's latency minutes.
LATENCY_WINDOW = timedelta(hours=24)


def persisted_latency(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The v1 routes' latency of the last 24 h from every API process (ledger.latency), in
    the shape `_latency` reads; None when no API has written any (or the table is missing)."""
    try:
        with conn.transaction():
            rows = latency.window(conn, LATENCY_WINDOW, V1_PREFIX)
    except psycopg.errors.UndefinedTable:
        return None
    if not rows:
        return None
    return {"source": "the last 24 h of every API process", "bound": True,
            "routes": [{"method": r.method, "route": r.route, "p95_ms": r.p95_ms,
                        "window": r.requests} for r in rows]}


def _stale_incident(conn: psycopg.Connection, name: str, f: Finding) -> None:
    """A stale snapshot (the freshness SLA violated) is an incident until it is met again."""
    try:
        with conn.transaction():
            if f.ok is False:
                incidents.open_incident(conn, "stale", name, f.detail)
            else:
                incidents.close_incident(conn, "stale", name, f.detail)
    except psycopg.errors.UndefinedTable:  # an older schema: no incidents table yet
        pass


def check_slas(settings: Settings, config: OpsConfig, metrics: LatencySource | None = None,
               send: Sender = post_json) -> CheckResult:
    """Evaluate every enabled SLA once, record violations and alert.

    Time comes from the database clock, the one clock every process agrees on.

    Raises:
        DatabaseUnavailable: the ledger cannot be reached.
    """
    snapshot = metrics() if metrics is not None else None
    opened: list[Violation] = []
    closed: list[Violation] = []
    sent = 0
    errors: list[str] = []
    with connect(settings, autocommit=True, application_name="fmw-sla") as conn:
        sla.close_orphans(conn)
        if config.webhook_url:  # earlier alerts the webhook did not take
            for v in sla.undelivered(conn, MAX_ALERT_ATTEMPTS):
                ok = _deliver(conn, config, settings.schema, v, "opened", send, errors)
                sent += ok
        defs = sla.list_definitions(conn, enabled_only=True)
        windows = {int(d.window_days) for d in defs if d.kind == "success_rate" and d.window_days}
        facts = sla.run_facts(conn, settings.timezone, windows)
        snapshot = persisted_latency(conn) or snapshot
        current = {v.sla_name: v for v in sla.open_violations(conn)}
        findings = []
        for d in defs:
            f = evaluate(d, facts, snapshot, settings.timezone)
            findings.append(f)
            if d.kind == "freshness" and f.ok is not None:
                _stale_incident(conn, d.name, f)
            was = current.get(d.name)
            if f.ok is False and was is not None:
                sla.refresh_open(conn, was.id, f.observed, f.detail)
            elif f.ok is False:
                new = sla.open_violation(conn, d, f.observed, f.detail)
                if new is not None:
                    opened.append(new)
                    log.warning("SLA violation opened: %s (%s): %s", d.name, d.kind, f.detail)
                    if config.webhook_url:
                        sent += _deliver(conn, config, settings.schema, new, "opened", send,
                                         errors)
            elif f.ok is True and was is not None:
                c = sla.close_violation(conn, was.id, f.detail)
                if c is not None:
                    closed.append(c)
                    log.info("SLA violation closed: %s (%s): %s", d.name, d.kind, f.detail)
                    if config.webhook_url and config.notify_resolved and c.alerted_at:
                        sent += _deliver(conn, config, settings.schema, c, "closed", send, errors)
    return CheckResult(tuple(findings), tuple(opened), tuple(closed), sent, tuple(errors))


def _deliver(conn: psycopg.Connection, config: OpsConfig, schema: str, v: Violation,
             event: Event, send: Sender, errors: list[str]) -> int:
    assert config.webhook_url is not None
    try:
        send(config.webhook_url, payload(v, event, schema), config.webhook_timeout_s)
    except WebhookError as exc:
        log.warning("SLA alert for %s not delivered: %s", v.sla_name, exc)
        errors.append(str(exc))
        if event == "opened":
            sla.record_alert(conn, v.id, resolved=False, error=str(exc))
        return 0
    sla.record_alert(conn, v.id, resolved=event == "closed", error=None)
    return 1
