"""FMW's error hierarchy: one root, a few named subclasses carrying their context as fields."""

from __future__ import annotations


class FmwError(Exception):
    """Root of every error FMW raises on purpose; the CLI prints these without a traceback."""

    exit_code = 1


class Transient:
    """Mixin: a retry may fix this (database unreachable, source timeout)."""


class ConfigError(FmwError):
    """The configuration file or an environment variable is invalid."""

    exit_code = 2

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)


class SourceError(FmwError):
    """A whole source cannot be read (unreadable, mis-encoded, missing mapped column)."""

    def __init__(self, source: str, reason: str, *, location: str | None = None,
                 row: int | None = None) -> None:
        self.source = source
        self.location = location
        self.row = row
        self.reason = reason
        where = f"source {source!r}"
        if location:
            where += f" ({location})"
        if row is not None:
            where += f", row {row}"
        super().__init__(f"{where}: {reason}")


class TransientSourceError(SourceError, Transient):
    """A source could not be reached (HTTP timeout, database refused connection)."""


class DatabaseUnavailable(FmwError, Transient):
    """The ledger database cannot be reached or started."""


class SchemaBehind(FmwError):
    """The ledger schema is older than the code; `fmw db upgrade` fixes it."""

    exit_code = 3


class SyncAlreadyRunning(FmwError):
    """Another process holds the sync lock."""

    exit_code = 4

    def __init__(self, run_id: int | None) -> None:
        self.run_id = run_id
        which = f"run {run_id}" if run_id is not None else "run id unknown"
        super().__init__(f"a sync is already running ({which})")


class SyncFailed(FmwError):
    """A sync run failed; nothing was applied to the ledger."""

    exit_code = 5

    def __init__(self, run_id: int, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"run {run_id} failed, nothing was applied: {reason}")
