"""FMW query room: read-only DuckDB over published Parquet snapshots (see ../shared/STYLE.md).

The HTTP API, the Streamlit UI and analysts all read snapshots through `Engine`::

    engine = Engine(settings)
    page = engine.query(QuerySpec.from_params({"mcc": "450", "order": "-updated_at"}))
    export = engine.export(QuerySpec(feature_group="volte"), "csv", bom=True)
"""

from query.encoders import (
    CONTENT_TYPES,
    FORMATS,
    ExportFormat,
    encode,
    encode_csv,
    encode_json,
    encode_ndjson,
    encode_parquet,
    encode_xlsx,
)
from query.engine import Engine
from query.errors import (
    BadCursor,
    BadValue,
    CorruptSnapshot,
    ExportError,
    NoSnapshot,
    QueryError,
    QueryTimeout,
    SqlRejected,
    UnknownField,
    UnknownGroup,
    UnknownOperator,
    UnknownTable,
    UnknownVersion,
)
from query.fields import Column, TableSchema
from query.filters import OPERATORS
from query.plan import DEFAULT_LIMIT, MAX_LIMIT, RESERVED, QuerySpec
from query.results import (
    Diff,
    Export,
    Facet,
    Facets,
    FacetValue,
    Result,
    SqlResult,
    Stream,
    VersionInfo,
)
from query.snapshot import Fallback, Snapshot

__all__ = [
    "CONTENT_TYPES", "DEFAULT_LIMIT", "FORMATS", "MAX_LIMIT", "OPERATORS", "RESERVED",
    "BadCursor", "BadValue", "Column", "CorruptSnapshot", "Diff", "Engine", "Export",
    "ExportError", "ExportFormat", "Facet", "FacetValue", "Facets", "Fallback", "NoSnapshot",
    "QueryError", "QuerySpec", "QueryTimeout", "Result", "Snapshot", "SqlRejected", "SqlResult",
    "Stream", "TableSchema", "UnknownField", "UnknownGroup", "UnknownOperator", "UnknownTable",
    "UnknownVersion", "VersionInfo", "encode", "encode_csv", "encode_json", "encode_ndjson",
    "encode_parquet", "encode_xlsx",
]
