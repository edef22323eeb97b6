"""Parquet files as DuckDB likes them: zstd, full row groups, sort order recorded."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.export import ROW_GROUP_ROWS, PartWriter


@pytest.mark.parametrize(("rows", "batch", "groups"), [
    (0, 1000, []),
    (5, 1000, [5]),
    (ROW_GROUP_ROWS, 7_001, [ROW_GROUP_ROWS]),
    (300_000, 7_001, [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 300_000 - 2 * ROW_GROUP_ROWS]),
    (300_000, 200_000, [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 300_000 - 2 * ROW_GROUP_ROWS]),
])
def test_small_batches_are_gathered_into_full_row_groups(tmp_path, rows, batch, groups):
    assert ROW_GROUP_ROWS >= 100_000
    schema = pa.schema([("feature_name", pa.string()), ("n", pa.int64())])
    data = pa.table({"feature_name": [f"f{i:07d}" for i in range(rows)],
                     "n": pa.array(range(rows), pa.int64())}, schema=schema)
    w = PartWriter(tmp_path / "x" / "part-0.parquet", schema, ("feature_name",))
    for b in data.to_batches(max_chunksize=batch):
        w.write(b)
    assert w.close() == rows
    meta = pq.read_metadata(tmp_path / "x" / "part-0.parquet")
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == groups
    assert all(meta.row_group(i).column(0).compression == "ZSTD" for i in range(meta.num_row_groups))
    if groups:
        assert meta.row_group(0).sorting_columns == (pq.SortingColumn(0),)
        stats = meta.row_group(len(groups) - 1).column(0).statistics
        assert stats.max == f"f{rows - 1:07d}"  # min/max per row group for pruning
    assert pq.read_table(tmp_path / "x" / "part-0.parquet").equals(data)
