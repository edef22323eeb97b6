"""Errors of the query room: each names the bad thing and, where there is a closed set, lists
the valid choices, so the API can answer 400/404 with a useful message."""

from __future__ import annotations

from collections.abc import Iterable

from fmw.errors import FmwError, Transient


def _listing(valid: Iterable[object]) -> str:
    items = [str(v) for v in valid]
    return ", ".join(items) if items else "none"


class QueryError(FmwError):
    """Root of the query room's errors: the request cannot be answered as asked."""


class UnknownTable(QueryError):
    def __init__(self, table: str, valid: Iterable[str]) -> None:
        self.table = table
        self.valid = tuple(valid)
        super().__init__(f"unknown table {table!r}; valid: {_listing(self.valid)}")


class UnknownField(QueryError):
    def __init__(self, field: str, valid: Iterable[str], *, table: str | None = None) -> None:
        self.field = field
        self.valid = tuple(valid)
        self.table = table
        where = f" in table {table!r}" if table else ""
        super().__init__(f"unknown field {field!r}{where}; valid: {_listing(self.valid)}")


class UnknownOperator(QueryError):
    def __init__(self, op: str, valid: Iterable[str], *, field: str | None = None) -> None:
        self.op = op
        self.valid = tuple(valid)
        self.field = field
        what = f"operator {op!r}" + (f" for field {field!r}" if field else "")
        super().__init__(f"unknown {what}; valid: {_listing(self.valid)}")


class BadValue(QueryError):
    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"bad value {value!r} for {field}: {reason}")


class BadCursor(QueryError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"bad cursor: {reason}")


class UnknownGroup(QueryError):
    def __init__(self, group: str, valid: Iterable[str], *, version: int | None = None) -> None:
        self.group = group
        self.valid = tuple(valid)
        self.version = version
        where = f" in snapshot v{version:06d}" if version is not None else ""
        super().__init__(f"unknown feature group {group!r}{where}; valid: {_listing(self.valid)}")


class UnknownVersion(QueryError):
    def __init__(self, requested: str, valid: Iterable[object]) -> None:
        self.requested = requested
        self.valid = tuple(valid)
        super().__init__(f"no usable snapshot {requested}; available: {_listing(self.valid)}")


class NoSnapshot(QueryError, Transient):
    """Nothing usable was published yet (or every version failed its checks)."""

    def __init__(self, root: str, problems: Iterable[str] = ()) -> None:
        self.root = root
        self.problems = tuple(problems)
        detail = f": {'; '.join(self.problems)}" if self.problems else ""
        super().__init__(f"no usable snapshot in {root}{detail}")


class CorruptSnapshot(QueryError):
    """A pinned version failed its checksum check (an unpinned read falls back instead)."""

    def __init__(self, version: int, problems: Iterable[str]) -> None:
        self.version = version
        self.problems = tuple(problems)
        super().__init__(f"snapshot v{version:06d} is damaged: {'; '.join(self.problems)}")


class SqlRejected(QueryError):
    """Analyst SQL that is not a single read-only statement, or that DuckDB refused."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"SQL rejected: {reason}")


class QueryTimeout(QueryError, Transient):
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"query interrupted after the {timeout_s:g} s time limit")


class ExportError(QueryError):
    """An export cannot be produced in the requested format (e.g. too many rows for XLSX)."""

    def __init__(self, fmt: str, reason: str) -> None:
        self.fmt = fmt
        self.reason = reason
        super().__init__(f"cannot export as {fmt}: {reason}")


class OutOfScope(QueryError):
    """A scoped user asked for a table the row scope cannot be applied to."""

    def __init__(self, table: str, valid: Iterable[str]) -> None:
        self.table = table
        self.valid = tuple(valid)
        super().__init__(f"table {table!r} is not available to a scoped user; "
                         f"available: {_listing(self.valid)}")
