"""The identity and row hash encodings, as a Python reference of what the sync computes in SQL.

identity_hash = hex(SHA-256(UTF-8(F))), where F joins ``name RS value`` pairs with US:

* RS is U+001E (record separator), US is U+001F (unit separator). Neither may occur in an
  identity value (such a row is rejected), so the encoding is unambiguous.
* Pairs are in the fixed canonical order of `fmw.settings.IDENTITY_FIELDS_ALLOWED`, whatever
  order the source configuration lists them in.
* Each value is NFC-normalised, then trimmed of spaces, tabs, CR, LF, U+00A0 and U+3000, then
  mapped through name_map (feature names, groups, operators) exactly as stored in `features`.

The same rule is implemented in SQL in `ledger.normalize`; a test checks both agree.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping

from fmw.settings import IDENTITY_FIELDS_ALLOWED

RS = "\x1e"
US = "\x1f"
TRIM_CHARS = " \t\r\n\u00a0\u3000"


def clean(value: str) -> str:
    """NFC-normalise and trim a value the way the sync does."""
    return unicodedata.normalize("NFC", value).strip(TRIM_CHARS)


def ordered_identity(fields: tuple[str, ...] | list[str]) -> list[str]:
    """Identity fields in canonical order."""
    return [f for f in IDENTITY_FIELDS_ALLOWED if f in fields]


def identity_text(values: Mapping[str, str]) -> str:
    """The exact text that is hashed, from already-clean identity values."""
    return US.join(f"{f}{RS}{values[f]}" for f in ordered_identity(list(values)))


def identity_hash(values: Mapping[str, str]) -> str:
    """SHA-256 hex of `identity_text` over cleaned values.

    Raises:
        ValueError: a value contains RS or US.
    """
    cleaned = {k: clean(v) for k, v in values.items()}
    for k, v in cleaned.items():
        if RS in v or US in v:
            raise ValueError(f"identity field {k!r} contains a control separator")
    return hashlib.sha256(identity_text(cleaned).encode("utf-8")).hexdigest()
