"""How deeply a JSON text nests, checked before `json.loads` so a deep document is a clear error.

Python's parser recurses once per level; 200,000 nested arrays end in a bare ``RecursionError``.
The check runs at C speed (bytes.translate keeps brackets and quotes, string contents are
dropped, an Arrow cumulative sum gives the depth); only a text over the limit is walked token by
token to find the line.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_TOKEN_RE = re.compile(_STRING + r"|[\[\]{}\n]", re.S)
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))
_STRING_RE = re.compile(rb'"[^"]*"')


def max_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in UTF-8 JSON, brackets in strings not counted.

    For invalid JSON (unbalanced brackets) the figure is an upper bound, not exact.
    """
    # Drop escaped backslashes, then escaped quotes; keep only brackets and quotes.
    marks = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    # Adjacent quotes are an empty string or the gap between two strings: dropping them never
    # moves a bracket into or out of a string. Usually no quote is left after this.
    marks = marks.replace(b'""', b"")
    if b'"' in marks:
        marks = _STRING_RE.sub(b"", marks)
    if not marks:
        return 0
    codes = pa.Array.from_buffers(pa.uint8(), len(marks), [None, pa.py_buffer(marks)])
    # '[' 0x5b and '{' 0x7b have bit 1 set, ']' 0x5d and '}' 0x7d do not: +1 or -1.
    opens = pc.cast(pc.bit_wise_and(codes, pa.scalar(2, pa.uint8())), pa.int32())
    steps = pc.subtract(opens, pa.scalar(1, pa.int32()))
    return int(pc.max(pc.cumulative_sum(steps)).as_py())


def check_depth(data: bytes, text: str, limit: int,
                per_line: bool = False) -> tuple[int, int] | None:
    """Where a JSON text first nests deeper than `limit`, as (line, column), or None.

    Args:
        data: the text as UTF-8 (for the quick check).
        text: the same text (to find the place, only when the quick check fails).
        limit: the deepest nesting allowed (the top-level array counts as level 1).
        per_line: JSON Lines: depth starts at 0 on each line.
    """
    if max_depth(data) <= limit:
        return None
    depth, line, line_start = 0, 1, 0
    for token in _TOKEN_RE.finditer(text):
        char = token.group()
        if char == "\n":
            line, line_start = line + 1, token.end()
            if per_line:
                depth = 0
        elif char in "[{":
            depth += 1
            if depth > limit:
                return line, token.start() - line_start + 1
        elif char in "]}":
            depth -= 1
    return None  # unbalanced brackets made the quick figure too high; the parser will say why
