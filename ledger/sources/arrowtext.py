"""Arrow columns (from Parquet) to text columns, vectorized where Arrow can do it.

The text matches `convert.to_text` for the common types: integral floats print as integers,
NaN is null, booleans are ``true``/``false``, timestamps are ISO 8601 with ``T``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ledger.sources.convert import to_text

#: Zones whose instants can be printed without a time-zone database (Windows has none for Arrow).
_UTC_NAMES = frozenset({"utc", "etc/utc", "z", "+00:00", "gmt", "etc/gmt", "zulu"})
_NANOS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def is_nested(typ: pa.DataType) -> bool:
    """True for list, struct and map types: their values are arrays or objects."""
    return bool(pa.types.is_nested(typ))


def column_to_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Convert one Arrow column to ``pa.string()`` following the reader's text rules.

    Args:
        column: any Arrow column.

    Returns:
        A string column of the same length; nested values become compact JSON text.
    """
    typ = column.type
    if pa.types.is_dictionary(typ):
        return column_to_text(pc.cast(column, typ.value_type))
    if pa.types.is_null(typ):
        return pa.chunked_array([pa.nulls(len(column), pa.string())])
    if (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_integer(typ)
            or pa.types.is_boolean(typ) or pa.types.is_decimal(typ) or pa.types.is_date(typ)):
        return pc.cast(column, pa.string())
    if pa.types.is_floating(typ):
        return _float_text(column)
    if pa.types.is_timestamp(typ) and _utc_or_naive(typ):
        return _timestamp_text(column)
    return _python_text(column)


def _python_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Fallback for types Arrow cannot cast as wanted (time, binary, named zones, nested)."""
    return pa.chunked_array([pa.array([to_text(v) for v in column.to_pylist()], pa.string())])


def _float_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if column.type == pa.float16():
        column = pc.cast(column, pa.float32())
    integral = pc.and_(pc.equal(pc.floor(column), column), pc.less(pc.abs(column), 1e16))
    as_int = pc.cast(pc.if_else(integral, column, 0), pa.int64())
    text = pc.if_else(integral, pc.cast(as_int, pa.string()), pc.cast(column, pa.string()))
    return pc.if_else(pc.is_nan(column), pa.scalar(None, pa.string()), text)


def _utc_or_naive(typ: pa.TimestampType) -> bool:
    return typ.tz is None or typ.tz.lower() in _UTC_NAMES


def _timestamp_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO 8601 like `datetime.isoformat`: fraction only when non-zero, ``+00:00`` for UTC."""
    typ: pa.TimestampType = column.type
    naive = pc.cast(column, pa.timestamp(typ.unit)) if typ.tz is not None else column
    seconds = pc.floor_temporal(naive, unit="second")
    whole = pc.cast(pc.cast(seconds, pa.timestamp("s")), pa.string())
    text = pc.replace_substring(whole, " ", "T", max_replacements=1)
    nanos = pc.multiply(pc.cast(pc.subtract(naive, seconds), pa.int64()), _NANOS[typ.unit])
    micros = pc.divide(nanos, 1000)
    sub_micro = pc.not_equal(pc.multiply(micros, 1000), nanos)
    fraction = pc.if_else(sub_micro, _padded(nanos, 9), _padded(micros, 6))
    text = pc.if_else(pc.equal(nanos, 0), text, pc.binary_join_element_wise(text, fraction, "."))
    if typ.tz is not None:
        text = pc.binary_join_element_wise(text, pa.scalar("+00:00"), "")
    return text


def _padded(values: pa.ChunkedArray, width: int) -> pa.ChunkedArray:
    return pc.utf8_lpad(pc.cast(values, pa.string()), width=width, padding="0")
