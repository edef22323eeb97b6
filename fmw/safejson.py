"""JSON from strangers (request bodies, cursors): bounded in size and nesting before parsing.

Python's `json` recurses once per nesting level, so a text of 100,000 ``[`` raises
RecursionError deep inside the parser (a 500 where a 400 belongs). `loads` measures the
nesting first, in one pass over the text, and refuses what is too deep or too large.
"""

from __future__ import annotations

import json
from typing import Any

#: Nesting levels any FMW JSON input needs (an allow list: object > list > object > value).
DEFAULT_MAX_DEPTH = 32


class UnsafeJson(ValueError):
    """The text is not JSON FMW accepts: too large, too deep, not JSON, or not finite."""


def depth(text: str) -> int:
    """The deepest nesting of objects and arrays in `text` (strings are skipped)."""
    deepest = level = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not a JSON number")


def loads(text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH,
          max_chars: int | None = None) -> Any:
    """Parse `text` as strict JSON (no NaN/Infinity), refusing deep or oversized input.

    Raises:
        UnsafeJson: with a reason fit for a client (no input echoed back).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsafeJson(f"not UTF-8 (byte {exc.start})") from None
    if max_chars is not None and len(text) > max_chars:
        raise UnsafeJson(f"longer than {max_chars} characters")
    found = depth(text)
    if found > max_depth:
        raise UnsafeJson(f"nested {found} levels deep; at most {max_depth} are accepted")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except UnsafeJson:
        raise
    except json.JSONDecodeError as exc:
        raise UnsafeJson(f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4,300 digits
        raise UnsafeJson(f"not valid JSON ({type(exc).__name__})") from None
    return value
