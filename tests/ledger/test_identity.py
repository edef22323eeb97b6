"""The identity hash: documented encoding, identical in Python and SQL, stable across platforms."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest

from ledger.db import connect
from ledger.identity import RS, US, identity_hash, identity_text
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import csv_source, write_csv

# A fixed vector: if this ever changes, every stored identity would change with it.
GOLDEN_VALUES = {"feature_group": "volte", "feature_name": "VoLTE", "mcc": "450", "mnc": "05"}
GOLDEN_TEXT = "feature_group\x1evolte\x1ffeature_name\x1eVoLTE\x1fmcc\x1e450\x1fmnc\x1e05"


def test_identity_text_is_the_documented_encoding():
    assert identity_text(GOLDEN_VALUES) == GOLDEN_TEXT
    expected = hashlib.sha256(GOLDEN_TEXT.encode("utf-8")).hexdigest()
    assert identity_hash(GOLDEN_VALUES) == expected
    assert expected == "7a4a4c2e8d0e5c2ff1af150dd263424a3f26057cbbd817a330a3d3ab9090162d"


def test_field_order_in_config_does_not_change_the_hash():
    reordered = dict(reversed(list(GOLDEN_VALUES.items())))
    assert identity_hash(reordered) == identity_hash(GOLDEN_VALUES)


@pytest.mark.parametrize("variant", [
    {"feature_name": "  VoLTE\t"},
    {"feature_name": "VoLTE\u3000"},
])
def test_surrounding_white_space_does_not_change_the_hash(variant):
    assert identity_hash({**GOLDEN_VALUES, **variant}) == identity_hash(GOLDEN_VALUES)


def test_nfc_and_nfd_spellings_hash_the_same():
    nfd = unicodedata.normalize("NFD", "Caf\u00e9 \ud55c\uae00")
    nfc = unicodedata.normalize("NFC", nfd)
    assert nfd != nfc
    a = identity_hash({**GOLDEN_VALUES, "feature_name": nfd})
    assert a == identity_hash({**GOLDEN_VALUES, "feature_name": nfc})


def test_separators_inside_a_value_are_rejected():
    with pytest.raises(ValueError):
        identity_hash({**GOLDEN_VALUES, "feature_name": f"a{US}b"})
    with pytest.raises(ValueError):
        identity_hash({**GOLDEN_VALUES, "feature_name": f"a{RS}b"})


def test_sql_and_python_compute_the_same_hash_and_it_survives_resync(make_settings, tmp_path):
    nfd_name = unicodedata.normalize("NFD", "Caf\u00e9 \ud55c\uae00")
    src = write_csv(tmp_path / "a.csv", [["volte", "VoLTE", "450", "05", "on", "", "", ""],
                                          ["volte", f" {nfd_name} ", "450", "05", "on", "", "", ""]])
    s = make_settings(csv_source("a", src))
    run_sync(s, plan_sync(s))
    with connect(s) as conn:
        stored = dict(conn.execute("SELECT feature_name, identity_hash FROM features").fetchall())
    assert stored["VoLTE"] == identity_hash(GOLDEN_VALUES)
    nfc_name = unicodedata.normalize("NFC", nfd_name)
    assert stored[nfc_name] == identity_hash({**GOLDEN_VALUES, "feature_name": nfc_name})
    r2 = run_sync(s, plan_sync(s))
    assert r2.counts["unchanged"] == 2 and r2.counts["created"] == 0
