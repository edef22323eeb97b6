"""The role map in memory: the config's `[[auth.roles]]` plus the entries admins edit in the
Dev page (PostgreSQL), reloaded when PostgreSQL announces a change; while PostgreSQL is down
the last good copy stays in force (also across restarts, through a small JSON file).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from fmw.authconfig import RoleRule, parse_role, role_json

log = logging.getLogger(__name__)


class RoleMap:
    def __init__(self, config: Sequence[RoleRule], loader: Callable[[], list[RoleRule]], *,
                 backup: Path | None = None) -> None:
        self.config = tuple(config)
        self._loader = loader
        self._backup = backup
        self._stored: tuple[RoleRule, ...] = ()
        self._rules = self.config
        self.last_error: str | None = None

    def rules(self) -> tuple[RoleRule, ...]:
        """Every entry (the same object until the map changes: callers may cache by it)."""
        return self._rules

    @property
    def stored(self) -> tuple[RoleRule, ...]:
        return self._stored

    def load(self) -> bool:
        """Reload the stored entries; False (keeping the last good copy) when that fails."""
        try:
            stored = self._loader()
        except Exception as exc:
            self.last_error = str(exc)
            if not self._stored:
                self._load_backup()
            log.warning("role map not refreshed, keeping the last good copy: %s", exc)
            return False
        self.replace(stored)
        return True

    def replace(self, stored: Sequence[RoleRule]) -> None:
        self._stored, self.last_error = tuple(stored), None
        self._rules = self.config + self._stored
        if self._backup is None:
            return
        try:
            self._backup.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._backup.with_suffix(".tmp")
            tmp.write_text(json.dumps([role_json(r) for r in stored], ensure_ascii=False),
                           encoding="utf-8", newline="\n")
            tmp.replace(self._backup)
        except OSError as exc:
            log.warning("could not write the role-map backup %s: %s", self._backup, exc)

    def _load_backup(self) -> None:
        if self._backup is None or not self._backup.is_file():
            return
        try:
            raw = json.loads(self._backup.read_text(encoding="utf-8"))
            self._stored = tuple(parse_role(r, f"{self._backup.name}[{i}]")
                                 for i, r in enumerate(raw))
            self._rules = self.config + self._stored
        except Exception as exc:
            log.warning("role-map backup %s unusable: %s", self._backup, exc)
