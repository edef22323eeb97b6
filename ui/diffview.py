"""Before/after of one feature row, side by side, changed fields highlighted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

#: Bookkeeping fields that change with every write; shown last and never highlighted.
NOISE = ("row_hash", "first_run_id", "first_seen_at", "last_run_id", "last_changed_at")
FIRST = ("feature_group", "feature_name", "mcc", "mnc", "status", "value", "owner", "notes",
         "operator", "country", "region")
HIGHLIGHT = "background-color: rgba(255, 196, 0, 0.35); font-weight: 600"


def as_dict(raw: Any) -> dict[str, Any]:
    """A before/after value as a dict (JSON text, a dict, or nothing)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"value": raw}
    return value if isinstance(value, dict) else {"value": value}


def field_rows(before: dict[str, Any], after: dict[str, Any],
               changed: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per field: name, before, after, changed (True when the values differ, or the
    field is in `changed`). Identity and content fields first, bookkeeping last."""
    names = list(dict.fromkeys([*(f for f in FIRST if f in before or f in after),
                                *sorted(set(before) | set(after))]))
    names = [n for n in names if n not in NOISE] + [n for n in NOISE if n in before or n in after]
    explicit = set(changed or ())
    out = []
    for n in names:
        b, a = before.get(n), after.get(n)
        differs = n not in NOISE and bool(before) and bool(after) and (b != a or n in explicit)
        out.append({"field": n, "before": _text(b), "after": _text(a), "changed": differs})
    return out


def _text(v: Any) -> str:
    """A value as the grid shows it; nothing (None) is empty, never the word "None"."""
    if v is None:
        return ""
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


#: What a created or deleted row shows in a change list.
SUMMARY_FIELDS = ("status", "value")
SUMMARY_CHARS = 40


def _short(v: Any) -> str:
    text = " ".join(_text(v).split())
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1] + "…"


def change_summary(before: Any, after: Any, changed: Sequence[str] | None = None) -> str:
    """One line for a change list: ``status: disabled → enabled · value: 0 → 9``.

    An update lists its changed fields (bookkeeping left out); a created row shows its status
    and value after (``status: → enabled``), a deleted row before (``status: enabled →``).
    Empty values stay empty.
    """
    b, a = as_dict(before), as_dict(after)
    if b and a:
        names = [n for n in (changed or changed_names(field_rows(b, a))) if n not in NOISE]
    else:
        names = [n for n in SUMMARY_FIELDS if _text((a or b).get(n))]
    parts = []
    for n in names:
        left, right = _short(b.get(n)), _short(a.get(n))
        parts.append(f"{n}: " + " ".join(x for x in (left, "→", right) if x))
    return " · ".join(parts)


def changed_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [r["field"] for r in rows if r["changed"]]


def side_by_side(before: Any, after: Any, changed: Sequence[str] | None = None, *,
                 key: str | None = None, height: int | None = None) -> list[str]:
    """Draw the before/after table; returns the names of the changed fields."""
    rows = field_rows(as_dict(before), as_dict(after), changed)
    frame = pd.DataFrame(rows, columns=["field", "before", "after", "changed"])
    marks = frame["changed"].tolist()

    def paint(row: pd.Series) -> list[str]:
        return [HIGHLIGHT if marks[row.name] else ""] * len(row)

    styled = frame[["field", "before", "after"]].style.apply(paint, axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", key=key,
                 height=height or min(38 + 35 * len(rows), 460))
    names = changed_names(rows)
    if names:
        st.caption("Changed: " + ", ".join(names))
    return names
