"""Sources: read any configured source into an Arrow table of text (`read_source`)."""

from ledger.sources.base import ROW_COLUMN, RowError, SourceTable
from ledger.sources.readers import read_source

__all__ = ["ROW_COLUMN", "RowError", "SourceTable", "read_source"]
