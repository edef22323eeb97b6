"""What the query layer hands back: frozen dataclasses holding Arrow data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pyarrow as pa

from query.snapshot import Fallback


@dataclass(frozen=True)
class VersionInfo:
    version: int
    name: str
    created_at: str
    run_id: int | None
    rows: int  # features
    current: bool


@dataclass(frozen=True)
class Result:
    """One page of rows. `total` counts every row matching the filters (None if not asked);
    `next_cursor` is None on the last page; `fallback` says the current version was damaged."""

    version: int
    table: str
    columns: tuple[str, ...]
    rows: pa.Table
    total: int | None
    next_cursor: str | None
    fallback: Fallback | None = None


@dataclass(frozen=True)
class TextPage:
    """One page already encoded (csv, json or ndjson), as `Engine.export` would encode those
    rows: `body` is the whole document (JSON: an array). `rows` is the page's row count."""

    version: int
    table: str
    fmt: str
    columns: tuple[str, ...]
    body: bytes
    rows: int
    total: int
    next_cursor: str | None
    fallback: Fallback | None = None


@dataclass(frozen=True)
class Stream:
    """All matching rows as Arrow batches, read lazily from one version; close it when done
    (or use it as a context manager): it holds its own DuckDB cursors."""

    version: int
    table: str
    columns: tuple[str, ...]
    reader: pa.RecordBatchReader
    fallback: Fallback | None = None
    _close: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class Export:
    """An encoded download: iterate `chunks` once (the stream closes when they run out)."""

    version: int
    fmt: str
    content_type: str
    filename: str
    chunks: Iterator[bytes]
    fallback: Fallback | None = None


@dataclass(frozen=True)
class FacetValue:
    value: Any
    count: int


@dataclass(frozen=True)
class Facet:
    """The `top` most frequent values of a column (None = missing) and the rest as `other`."""

    column: str
    values: tuple[FacetValue, ...]
    other: int


@dataclass(frozen=True)
class Facets:
    version: int
    total: int
    facets: tuple[Facet, ...]
    fallback: Fallback | None = None

    def __getitem__(self, column: str) -> Facet:
        for f in self.facets:
            if f.column == column:
                return f
        raise KeyError(column)


@dataclass(frozen=True)
class SqlResult:
    version: int
    columns: tuple[str, ...]
    rows: pa.Table
    truncated: bool  # more rows than the limit existed
    elapsed_s: float
    over_bytes: bool = False  # reading stopped at the byte cap: more rows (or larger) existed


@dataclass(frozen=True)
class Diff:
    """Features added, removed and changed (row hash differs) from one version to another.

    `rows` (at most the requested limit) has: change ('added' | 'removed' | 'changed'),
    identity_hash, feature_group, feature_name, mcc, mnc, changed_fields (list of column
    names, for 'changed'), before_json and after_json (the whole row as JSON text)."""

    from_version: int
    to_version: int
    added: int
    removed: int
    changed: int
    rows: pa.Table
