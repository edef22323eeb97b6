"""Ordering and keyset paging: ``order=-updated_at,name`` and the opaque ``cursor``.

Every order ends with the table's key, so it is total and a page boundary is exact. NULLs sort
last in both directions. The cursor is base64url JSON of (version, query fingerprint, the sort
values of the last row); it pins the snapshot version, so all pages come from one version.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fmw.safejson import loads as safe_json
from query.errors import BadCursor, BadValue
from query.fields import TableSchema
from query.filters import Params, ident

CURSOR_FORMAT = 1
#: No cursor this service issues is longer (sort values are short columns, and names and
#: notes are bounded by the ledger); a longer token is refused before it is decoded.
MAX_CURSOR_CHARS = 16_384
MAX_SORT_KEYS = 32


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool = False

    def sql(self) -> str:
        return f"{ident(self.column)} {'DESC' if self.descending else 'ASC'} NULLS LAST"

    @property
    def spec(self) -> str:
        return ("-" if self.descending else "") + self.column


def parse_order(order: Sequence[str] | str | None, schema: TableSchema) -> tuple[SortKey, ...]:
    """Sort keys for an ``order`` parameter (default: the table's), ending with its key.

    Raises:
        UnknownField: an unknown column; BadValue: an unsortable or repeated column.
    """
    if isinstance(order, str):
        items = [s for s in order.split(",")]
    else:
        items = list(order or ())
    items = [s.strip() for s in items]
    if not any(items):
        items = list(schema.default_order)
    keys: list[SortKey] = []
    for item in items:
        if not item:
            raise BadValue("order", ",".join(items), "empty sort key")
        desc = item.startswith("-")
        col = schema.column(item.lstrip("+-"))
        if col.kind in ("list", "other"):
            raise BadValue("order", item, f"cannot sort by {col.name} ({col.type})")
        if any(k.column == col.name for k in keys):
            raise BadValue("order", item, f"{col.name} is named twice")
        keys.append(SortKey(col.name, desc))
    for k in schema.key:
        if not any(s.column == k for s in keys):
            keys.append(SortKey(k))
    return tuple(keys)


def order_sql(keys: Iterable[SortKey]) -> str:
    return ", ".join(k.sql() for k in keys)


@dataclass(frozen=True)
class CursorState:
    version: int
    fingerprint: str
    values: tuple[Any, ...]


def fingerprint(*parts: Any) -> str:
    """A short hash identifying a query's shape (table, group, filters, search, order)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _enc(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"ts": v.isoformat()}
    if isinstance(v, date):
        return {"d": v.isoformat()}
    if isinstance(v, Decimal):
        return {"dec": str(v)}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(f"cannot put a {type(v).__name__} in a cursor")


def _dec(v: Any) -> Any:
    if isinstance(v, dict):
        (tag, text), = v.items()
        if not isinstance(text, str) or len(text) > 64:
            raise ValueError("tagged value")
        if tag == "ts":
            return datetime.fromisoformat(text)
        if tag == "d":
            return date.fromisoformat(text)
        if tag == "dec":
            d = Decimal(text)
            if not d.is_finite() or len(d.as_tuple().digits) > 38 or abs(d.adjusted()) > 38:
                raise ValueError("decimal out of range")
            return d
        raise ValueError(f"unknown tag {tag!r}")
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise ValueError("integer out of range")
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("number out of range")
        return v
    raise ValueError(f"unexpected {type(v).__name__}")


def encode_cursor(state: CursorState) -> str:
    payload = {"f": CURSOR_FORMAT, "v": state.version, "q": state.fingerprint,
               "k": [_enc(x) for x in state.values]}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> CursorState:
    """The state in a cursor token, its values checked for shape and range (a forged token
    never reaches SQL with a value DuckDB cannot take; `check_values` types them per key).

    Raises: BadCursor: not a cursor this version of FMW issued.
    """
    if len(token) > MAX_CURSOR_CHARS:
        raise BadCursor(f"longer than any cursor this service issues ({MAX_CURSOR_CHARS} "
                        "characters); start again without one")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # a cursor holds scalars and one-level tagged values: three levels at most
        d = safe_json(raw, max_depth=3)
        if not isinstance(d, dict) or d["f"] != CURSOR_FORMAT:
            raise ValueError("format")
        if not isinstance(d["k"], list) or len(d["k"]) > MAX_SORT_KEYS:
            raise ValueError("values")
        values = tuple(_dec(x) for x in d["k"])
        version, fp = d["v"], d["q"]
        if isinstance(version, bool) or not isinstance(version, int) \
                or not 0 <= version < 10**12 or not isinstance(fp, str):
            raise ValueError("fields")
        return CursorState(version, fp, values)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError,
            UnicodeDecodeError, OverflowError):
        raise BadCursor("not a cursor issued by this service (start again without one)") from None


def check_values(keys: Sequence[SortKey], values: Sequence[Any],
                 kinds: Sequence[str]) -> None:
    """A cursor's sort values fit its keys' column kinds (a forged token is refused here, not
    by a cast error in DuckDB).

    Raises: BadCursor.
    """
    if len(keys) != len(values) or len(kinds) != len(keys):
        raise BadCursor("the cursor does not match this query's order")
    for key, value, kind in zip(keys, values, kinds, strict=True):
        if value is None or _fits(value, kind):
            continue
        raise BadCursor(f"its value for {key.column} is not a {kind} value")


def _fits(value: Any, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if kind == "timestamp":
        return isinstance(value, datetime)
    if kind == "date":
        return isinstance(value, date) and not isinstance(value, datetime)
    if kind == "bool":
        return isinstance(value, bool)
    return False


def keyset_predicate(keys: Sequence[SortKey], values: Sequence[Any], params: Params) -> str:
    """Rows strictly after the row whose sort values are `values`, in the order `keys`.

    With NULLS LAST: after a non-null v come larger (smaller, descending) values and NULLs;
    nothing comes after a NULL in that column except through the later keys.
    """
    if len(keys) != len(values):
        raise BadCursor("the cursor does not match this query's order")
    ors = []
    for i, (k, v) in enumerate(zip(keys, values, strict=True)):
        if v is None:
            continue
        eq = [f"{ident(p.column)} IS NOT DISTINCT FROM {params.add(pv)}"
              for p, pv in zip(keys[:i], values[:i], strict=True)]
        op = "<" if k.descending else ">"
        col = ident(k.column)
        ors.append("(" + " AND ".join([*eq, f"({col} {op} {params.add(v)} OR {col} IS NULL)"])
                   + ")")
    return "(" + " OR ".join(ors) + ")" if ors else "false"
