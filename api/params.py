"""Query-parameter parsing that answers bad input with a 400 naming the parameter."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import falcon

from api.errors import bad_request
from fmw import safejson

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: What a feature group name may look like in a URL (the ledger quarantines other names).
GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def one(req: falcon.Request, name: str) -> str | None:
    """The parameter's value; given twice is an error (which one would win?)."""
    values = req.get_param_as_list(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad_request(f"parameter {name!r} was given {len(values)} times; give it once",
                          parameter=name)
    return str(values[0])


def integer(req: falcon.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = one(req, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"parameter {name!r} must be an integer, got {raw!r}",
                          parameter=name) from None
    if not lo <= value <= hi:
        raise bad_request(f"parameter {name!r} must be between {lo} and {hi}, got {value}",
                          parameter=name)
    return value


def boolean(req: falcon.Request, name: str, default: bool) -> bool:
    raw = one(req, name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise bad_request(f"parameter {name!r} must be true or false, got {raw!r}", parameter=name)


def choice(req: falcon.Request, name: str, valid: Sequence[str], default: str | None) -> str | None:
    raw = one(req, name)
    if raw is None or raw == "":
        return default
    if raw not in valid:
        raise bad_request(f"parameter {name!r} must be one of {', '.join(valid)}, got {raw!r}",
                          parameter=name, valid=list(valid))
    return raw


def timestamp(req: falcon.Request, name: str) -> datetime | None:
    raw = one(req, name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"parameter {name!r} must be an ISO 8601 date or date-time, got "
                          f"{raw!r}", parameter=name) from None
    if value.tzinfo is None:
        from datetime import UTC
        value = value.replace(tzinfo=UTC)
    return value


def text(req: falcon.Request, name: str, max_len: int = 200) -> str | None:
    raw = one(req, name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_len or any(ord(c) < 32 for c in raw):
        raise bad_request(f"parameter {name!r} must be at most {max_len} printable characters",
                          parameter=name)
    return raw


def group_name(value: str) -> str:
    """A feature group from the URL path: a name, never a path (no '/', '..', '\\')."""
    if not GROUP_RE.match(value) or ".." in value:
        raise bad_request(f"{value!r} is not a valid feature group name (letters, digits, "
                          "'_', '.', '-')", parameter="feature_group")
    return value


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=json_default, separators=(",", ":"))


#: Nesting levels a request body may have ({"entries": [{...}]} needs three).
BODY_MAX_DEPTH = 8


def json_body(req: falcon.Request) -> Any:
    """The request's JSON body (None when there is none), parsed with bounded nesting; the
    Guard has already refused bodies over the size limit.

    Raises:
        Problem 400: not JSON, not UTF-8, too deep, NaN/Infinity.
    """
    raw = req.bounded_stream.read()
    if not raw.strip():
        return None
    try:
        return safejson.loads(raw, max_depth=BODY_MAX_DEPTH)
    except safejson.UnsafeJson as exc:
        raise bad_request(f"the body must be JSON ({exc}), e.g. {{\"entries\": [{{\"cidr\": "
                          "\"10.0.0.0/8\", \"role\": \"user\", \"note\": \"...\"}]}",
                          parameter="body") from None
