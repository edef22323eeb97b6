"""dev: field-level differences between two snapshot versions (through the query engine)."""

from __future__ import annotations

import json
from typing import Any

import falcon

from api import params
from api.services import Services


def _load(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def diff_versions(svc: Services, req: falcon.Request, v_from: int, v_to: int) -> dict[str, Any]:
    """Rows added, removed and changed from `v_from` to `v_to`, each with its changed fields."""
    from api.dev_runs import field_diff
    group = params.text(req, "group", 128)
    limit = params.integer(req, "limit", 100, 1, 1000) or 100
    offset = params.integer(req, "offset", 0, 0, 2**31) or 0
    d = svc.reader.diff(v_from, v_to, feature_group=group, limit=limit, offset=offset)
    rows = []
    for r in d.rows.to_pylist():
        before, after = _load(r.pop("before_json", None)), _load(r.pop("after_json", None))
        changed = r.get("changed_fields") or None
        rows.append({**r, "fields": field_diff(before, after, changed)})
    return {"from": d.from_version, "to": d.to_version,
            "counts": {"added": d.added, "removed": d.removed, "changed": d.changed},
            "data": rows, "meta": {"limit": limit, "offset": offset,
                                   "total": d.added + d.removed + d.changed}}
