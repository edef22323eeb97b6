"""The contract every source reader fulfils: a source becomes an Arrow table of strings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from fmw.settings import Settings

#: Name of the int64 column holding the row number a person would use to find the row
#: (spreadsheet row incl. header for csv/xlsx, line number for jsonl, 1-based record index otherwise).
ROW_COLUMN = "__row"


@dataclass(frozen=True)
class SourceLimits:
    """What a reader accepts before it quarantines a row or refuses the file (from settings).

    `roots` empty means any folder; `allow_symlinks` false refuses a source path that is a link.
    """

    max_cell_bytes: int = 1 << 20
    max_columns: int = 1000
    max_json_depth: int = 64
    xlsx_max_unpacked_mb: float = 1024.0
    xlsx_max_rows: int = 1_048_576
    roots: tuple[Path, ...] = ()
    allow_symlinks: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceLimits:
        return cls(max_cell_bytes=settings.source_max_cell_bytes,
                   max_columns=settings.source_max_columns,
                   max_json_depth=settings.source_max_json_depth,
                   xlsx_max_unpacked_mb=settings.xlsx_max_unpacked_mb,
                   xlsx_max_rows=settings.xlsx_max_rows,
                   roots=settings.source_roots,
                   allow_symlinks=settings.source_allow_symlinks)


DEFAULT_LIMITS = SourceLimits()


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
