"""The filter grammar (Django-style lookups) and its compilation to SQL with bound parameters.

``field=v``, ``field=a,b`` (= ``field__in=a,b``), ``field__ne``, ``__contains``, ``__icontains``,
``__startswith``, ``__gt``, ``__gte``, ``__lt``, ``__lte``, ``__isnull=true|false``. In lists a
comma inside a value is written ``\\,`` (and a backslash ``\\\\``). Conditions on different keys
are ANDed; ``field=a`` given twice means ``field IN (a, b)``. Values are converted to the column's
type and always bound as parameters: no request text ever becomes SQL text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from query.errors import BadValue, UnknownOperator
from query.fields import Column, Kind, TableSchema

Op = Literal["exact", "in", "ne", "contains", "icontains", "startswith", "gt", "gte", "lt",
             "lte", "isnull"]
OPERATORS: tuple[str, ...] = get_args(Op)
_ORDERED = ("exact", "in", "ne", "gt", "gte", "lt", "lte", "isnull")
OPS_BY_KIND: dict[Kind, tuple[str, ...]] = {
    "text": OPERATORS,
    "integer": _ORDERED,
    "number": _ORDERED,
    "timestamp": _ORDERED,
    "date": _ORDERED,
    "bool": ("exact", "in", "ne", "isnull"),
    "list": ("contains", "isnull"),
    "other": ("isnull",),
}
_LISTS = ("exact", "in", "ne")  # operators whose value is a comma-separated list
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_VALUES = 1000
MAX_VALUE_CHARS = 1000
MAX_SEARCH_TERMS = 10
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class Condition:
    """One parsed ``key=value`` pair: field as written (maybe an alias), operator, raw value."""

    field: str
    op: Op
    raw: str


class Params:
    """Collects bound parameters and hands out their placeholders (``$p0``, ``$p1``, ...)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def ident(name: str) -> str:
    """A quoted SQL identifier (names are also checked against the schema before use)."""
    return '"' + name.replace('"', '""') + '"'


def parse_key(key: str) -> tuple[str, Op]:
    """``"mcc__in"`` -> ``("mcc", "in")``; a bare field means ``exact``.

    Raises:
        UnknownOperator: the part after the last ``__`` is not an operator.
    """
    field, sep, op = key.rpartition("__")
    if not sep:
        return key, "exact"
    if op not in OPERATORS:
        raise UnknownOperator(op, OPERATORS, field=field)
    return field, op  # type: ignore[return-value]


def parse_filters(pairs: Iterable[tuple[str, str]]) -> tuple[Condition, ...]:
    """Parse request pairs into conditions (syntax only; fields are checked on compile)."""
    out = []
    for key, raw in pairs:
        field, op = parse_key(key)
        out.append(Condition(field, op, raw))
    return tuple(out)


def split_values(raw: str) -> list[str]:
    """Split a comma list; ``\\,`` is a literal comma and ``\\\\`` a literal backslash."""
    values, cur, i = [], [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in ",\\":
            cur.append(raw[i + 1])
            i += 2
            continue
        if ch == ",":
            values.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    values.append("".join(cur))
    return values


def convert(col: Column, raw: str, *, label: str | None = None) -> Any:
    """A request value as a Python value of the column's type.

    Raises:
        BadValue: empty, too long, or not of the column's type.
    """
    label = label or col.name
    if raw == "":
        raise BadValue(label, raw, "empty value; use __isnull=true to find missing values")
    if len(raw) > MAX_VALUE_CHARS:
        raise BadValue(label, raw[:40] + "...", f"longer than {MAX_VALUE_CHARS} characters")
    if "\x00" in raw:
        raise BadValue(label, raw, "contains a NUL character")
    kind = "text" if col.kind == "list" else col.kind
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "bool":
            low = raw.strip().lower()
            if low not in _TRUE + _FALSE:
                raise ValueError("expected true or false")
            return low in _TRUE
        if kind == "date":
            return date.fromisoformat(raw.strip())
        if kind == "timestamp":
            ts = datetime.fromisoformat(raw.strip())
            return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadValue(label, raw, f"not a valid {col.kind} ({col.type}): {exc}") from None
    return unicodedata.normalize("NFC", raw)


def _isnull(label: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low not in _TRUE + _FALSE:
        raise BadValue(label, raw, "__isnull takes true or false")
    return low in _TRUE


def compile_filters(conds: Iterable[Condition], schema: TableSchema, params: Params) -> list[str]:
    """SQL predicates (to be ANDed) for the conditions, with their values added to `params`.

    Raises:
        UnknownField, UnknownOperator (listing the operators valid for that field), BadValue.
    """
    preds: list[str] = []
    equal: dict[str, list[Any]] = {}  # exact/in values per column, merged into one IN
    for c in conds:
        col = schema.column(c.field)
        valid = OPS_BY_KIND[col.kind]
        if c.op not in valid:
            raise UnknownOperator(c.op, valid, field=c.field)
        label = f"{c.field}__{c.op}" if c.op != "exact" else c.field
        q = ident(col.name)
        if c.op == "isnull":
            preds.append(f"{q} IS NULL" if _isnull(label, c.raw) else f"{q} IS NOT NULL")
            continue
        if c.op in _LISTS:
            raws = split_values(c.raw)
            if len(raws) > MAX_VALUES:
                raise BadValue(label, c.raw[:40] + "...", f"more than {MAX_VALUES} values")
            values = [convert(col, r, label=label) for r in raws]
            if c.op == "ne":
                marks = ", ".join(params.add(v) for v in values)
                preds.append(f"({q} IS NULL OR {q} NOT IN ({marks}))")
            else:
                equal.setdefault(col.name, []).extend(values)
            continue
        value = convert(col, c.raw, label=label)
        if c.op == "contains" and col.kind == "list":
            preds.append(f"list_contains({q}, {params.add(value)})")
        elif c.op == "contains":
            preds.append(f"contains({q}, {params.add(value)})")
        elif c.op == "icontains":
            preds.append(f"contains(lower({q}), lower({params.add(value)}))")
        elif c.op == "startswith":
            preds.append(f"starts_with({q}, {params.add(value)})")
        else:
            preds.append(f"{q} {_COMPARE[c.op]} {params.add(value)}")
    for name, values in equal.items():
        unique = list(dict.fromkeys(values))
        if len(unique) == 1:
            preds.append(f"{ident(name)} = {params.add(unique[0])}")
        else:
            preds.append(f"{ident(name)} IN ({', '.join(params.add(v) for v in unique)})")
    return preds


def compile_search(q: str | None, schema: TableSchema, params: Params) -> str | None:
    """A predicate for free-text search: every term must occur (case-insensitively) in one of
    the table's search columns; None for an empty `q`.

    Raises:
        BadValue: the table has no search columns, or too many terms.
    """
    terms = unicodedata.normalize("NFC", q or "").split()
    if not terms:
        return None
    cols = schema.search_columns
    if not cols:
        raise BadValue("q", q, f"free-text search is not available for table {schema.table!r}")
    if len(terms) > MAX_SEARCH_TERMS:
        raise BadValue("q", q, f"more than {MAX_SEARCH_TERMS} search terms")
    preds = []
    for term in terms:
        if len(term) > MAX_VALUE_CHARS or "\x00" in term:
            raise BadValue("q", term[:40], "search term too long or contains NUL")
        mark = params.add(term)
        preds.append("(" + " OR ".join(
            f"contains(lower({ident(c)}), lower({mark}))" for c in cols) + ")")
    return " AND ".join(preds)
