"""The ledger's Arrow read API for snapshots: one consistent moment, plain types, byte order."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ledger.export import FEATURE_KEYS, byte_order_key, open_export
from tests.ledger.synced import GROUP_SIZES, ledger

__all__ = ["ledger"]  # the fixture


def test_byte_order_key_sorts_like_tuples_of_utf8_bytes_with_nulls_last():
    rows = [("volte", "ab", "450", "05"), ("volte", "a", "450", "05"), ("volte", "a", "45", "0"),
            ("vo", "z", "001", "01"), ("volte", "é", "450", "05"), ("volte", "한", "450", "05"),
            ("volte", "Z", "450", "05"), ("volte", None, "450", "05"), ("volte", "", "450", "05")]
    table = pa.table({k: [r[i] for r in rows] for i, k in enumerate(FEATURE_KEYS)})
    order = pc.sort_indices(byte_order_key(table, FEATURE_KEYS)).to_pylist()

    def expected(r):  # code point order == UTF-8 byte order; None after every string
        return tuple((1, "") if v is None else (0, v) for v in r)

    assert [rows[i] for i in order] == sorted(rows, key=expected)


def test_features_come_sorted_with_plain_types_and_without_driver_metadata(ledger):
    with open_export(ledger.settings) as src:
        counts = src.group_counts()
        table = src.features().read_all()
    assert counts == dict(sorted(GROUP_SIZES.items())) and list(counts) == sorted(counts)
    assert table.num_rows == sum(GROUP_SIZES.values())
    keys = list(zip(*(table.column(c).to_pylist() for c in FEATURE_KEYS), strict=True))
    assert keys == sorted(keys)
    assert table.schema.field("attrs").type == pa.string()
    assert table.schema.metadata is None and all(f.metadata is None for f in table.schema)


def test_an_export_and_its_twin_see_the_ledger_as_of_one_moment(ledger):
    with open_export(ledger.settings) as src:
        assert src.last_run_id() == 1
        ledger.conn.execute("DELETE FROM features WHERE feature_group = 'rcs'")
        ledger.conn.execute("UPDATE runs SET status = 'failed'")
        with src.twin() as twin:
            runs = twin.table("runs").read_all()
        features = src.features().read_all()
    assert runs.column("status").to_pylist() == ["succeeded"]
    assert features.num_rows == sum(GROUP_SIZES.values())


def test_unknown_table_is_refused(ledger):
    with open_export(ledger.settings) as src, pytest.raises(ValueError, match="not an exported"):
        src.table("run_errors; DROP TABLE features")
