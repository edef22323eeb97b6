"""The contract every source reader fulfils: a source becomes an Arrow table of strings."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

#: Name of the int64 column holding the row number a person would use to find the row
#: (spreadsheet row incl. header for csv/xlsx, line number for jsonl, 1-based record index otherwise).
ROW_COLUMN = "__row"


@dataclass(frozen=True)
class RowError:
    """A row the reader could read but not convert (e.g. a nested object in a mapped column)."""

    row: int
    reason: str
    raw: dict[str, str | None]


@dataclass(frozen=True)
class SourceTable:
    """What a reader returns.

    `table` has `ROW_COLUMN` (int64) first, then one `pa.string()` column per source column,
    named exactly as in the source (header text trimmed; duplicates get a `_2`, `_3` suffix).
    Empty cells are null. Rows listed in `row_errors` are not in `table`.
    """

    source: str
    location: str
    table: pa.Table
    row_errors: tuple[RowError, ...] = ()

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.row_errors)
