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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from query.errors import BadCursor, BadValue
from query.fields import TableSchema
from query.filters import Params, ident

CURSOR_FORMAT = 1


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
        if tag == "ts":
            return datetime.fromisoformat(text)
        if tag == "d":
            return date.fromisoformat(text)
        if tag == "dec":
            return Decimal(text)
        raise ValueError(f"unknown tag {tag!r}")
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise ValueError(f"unexpected {type(v).__name__}")


def encode_cursor(state: CursorState) -> str:
    payload = {"f": CURSOR_FORMAT, "v": state.version, "q": state.fingerprint,
               "k": [_enc(x) for x in state.values]}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> CursorState:
    """Raises: BadCursor: not a cursor this version of FMW issued."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        if d["f"] != CURSOR_FORMAT:
            raise ValueError("format")
        values = tuple(_dec(x) for x in d["k"])
        if not isinstance(d["v"], int) or not isinstance(d["q"], str):
            raise ValueError("fields")
        return CursorState(d["v"], d["q"], values)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError,
            UnicodeDecodeError):
        raise BadCursor("not a cursor issued by this service (start again without one)") from None


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
