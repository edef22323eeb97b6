"""The dev API's way into the ledger: each call opens a short autocommit session.

Only `ledger` modules run SQL; this class picks the right one and turns a lost database into
`DatabaseUnavailable` (503), so resources stay free of connection handling.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from fmw.authconfig import RoleRule
from fmw.settings import Settings
from ledger import access, audit, latency, reports, roles, runs, sla, tokens
from ledger.access import AllowEntry, ApiKey
from ledger.audit import AuditEntry, AuditVerification
from ledger.db import database_url
from ledger.history import ChangeFilter, list_changes
from ledger.reports import RunsSummary
from ledger.runs import RunSummary


class LedgerGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._url: str | None = None

    def _session(self) -> Any:
        if self._url is None:  # resolved once: for the embedded server this may start it
            self._url = database_url(self.settings)
        return access.session(self.settings, url=self._url)

    # -- security ------------------------------------------------------------------------------
    def allow_list(self) -> list[AllowEntry]:
        with self._session() as conn:
            return access.load_allow_list(conn)

    def replace_allow_list(self, entries: Sequence[AllowEntry]) -> list[AllowEntry]:
        with self._session() as conn:
            access.replace_allow_list(conn, entries)
            return access.load_allow_list(conn)

    def listen_allow_list(self, changed: Callable[[], object], stop: threading.Event) -> None:
        """Call `changed` on every allow-list change of this schema until `stop` (blocks)."""
        access.listen_allow_list(self.settings, changed, stop)

    def listen_changes(self, handlers: dict[str, Callable[[], object]],
                       stop: threading.Event) -> None:
        """Call a handler per announced change (allow list, personal tokens) until `stop`."""
        access.listen(self.settings, handlers, stop)

    def save_latency(self, rows: Sequence[latency.MinuteRow]) -> int:
        """Add this process's finished minutes of request latency."""
        with self._session() as conn:
            return latency.save(conn, socket.gethostname(), os.getpid(), rows)

    def latency_window(self, since: timedelta,
                       route_prefix: str = "") -> list[latency.RouteLatency]:
        with self._session() as conn:
            return latency.window(conn, since, route_prefix)

    def check_key(self, secret: str) -> ApiKey | None:
        with self._session() as conn:
            return access.check_key(conn, secret)

    def roles(self) -> list[RoleRule]:
        with self._session() as conn:
            return roles.load_roles(conn)

    def replace_roles(self, rules: Sequence[RoleRule]) -> list[RoleRule]:
        with self._session() as conn:
            roles.replace_roles(conn, rules)
            return roles.load_roles(conn)

    def check_token(self, secret: str) -> tuple[tokens.PersonalToken | None, str]:
        with self._session() as conn:
            return tokens.check(conn, secret)

    def create_token(self, **kwargs: Any) -> tokens.NewToken:
        with self._session() as conn:
            return tokens.create(conn, **kwargs)

    def list_tokens(self, subject: str | None) -> list[tokens.PersonalToken]:
        with self._session() as conn:
            return tokens.list_for(conn, subject)

    def revoke_token(self, ident: str, subject: str | None) -> tokens.PersonalToken:
        with self._session() as conn:
            return tokens.revoke(conn, ident, subject=subject)

    def audit(self, entry: AuditEntry) -> int:
        with self._session() as conn:
            return audit.append(conn, entry)

    def verify_audit(self) -> AuditVerification:
        with self._session() as conn:
            return audit.verify_chain(conn)

    # -- runs ----------------------------------------------------------------------------------
    def list_runs(self, limit: int) -> list[RunSummary]:
        with self._session() as conn:
            return runs.list_runs(conn, limit)

    def run_with_errors(self, run_id: int, limit: int) -> tuple[RunSummary | None,
                                                                 list[dict[str, Any]]]:
        with self._session() as conn:
            run = runs.get_run(conn, run_id)
            return run, (runs.run_errors(conn, run_id, limit) if run else [])

    def summary(self, days: int, include_today: bool) -> RunsSummary:
        with self._session() as conn:
            return reports.runs_summary(conn, self.settings.timezone, days, include_today)

    def max_run_id(self) -> int:
        with self._session() as conn:
            return reports.max_run_id(conn)

    def newer_run_id(self, after: int, trigger: str) -> int | None:
        with self._session() as conn:
            return reports.newer_run_id(conn, after, trigger)

    def running_run_id(self) -> int | None:
        with self._session() as conn:
            return reports.running_run_id(conn)

    # -- changes -------------------------------------------------------------------------------
    def changes(self, f: ChangeFilter) -> list[dict[str, Any]]:
        with self._session() as conn:
            return list_changes(conn, f)

    def change(self, change_id: int) -> dict[str, Any] | None:
        with self._session() as conn:
            return reports.get_change(conn, change_id)

    def sla(self) -> dict[str, Any]:
        """SLA definitions, open and recent violations."""
        with self._session() as conn:
            return sla.sla_report(conn)

    # -- health --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Database facts and the newest run (raises DatabaseUnavailable when down)."""
        with self._session() as conn:
            db = reports.ping(conn)
            last = runs.list_runs(conn, 1)
            running = reports.running_run_id(conn)
            scheduler = self._scheduler(conn)
        return {"database": db, "last_run": last[0].as_json() if last else None,
                "running_run_id": running, "scheduler": scheduler}

    def _scheduler(self, conn: Any) -> dict[str, Any] | None:
        """The scheduler as the ledger sees it (its lock holder and last fires), if the
        scheduler room is installed; None otherwise."""
        try:
            from ledger import scheduling
            holder = scheduling.scheduler_lock_holder(conn, self.settings.schema)
            fires = scheduling.fire_states(conn)
        except Exception:  # no scheduler tables or module yet: the caller says "not configured"
            return None
        return {"status": "running" if holder else "not running", "holder": holder,
                "jobs": {k: v.as_json() for k, v in fires.items()}}
