"""Ordering and paging: keyset cursors and offsets are stable across pages and versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from query import BadCursor, BadValue, Engine, QuerySpec, UnknownField
from query.errors import ExportError
from query.paging import CursorState, decode_cursor, encode_cursor
from tests.query.conftest import FEATURES_V1, features_v2, write_version

ORDERS = [
    (), ("-updated_at",), ("updated_at", "-name"), ("notes",), ("-notes",), ("status", "-mcc"),
    ("-last_run_id", "value"), ("operator", "-updated_at"), ("-identity_hash",),
]


def keys(rows: list[dict]) -> list[str]:
    return [r["identity_hash"] for r in rows]


def every_page_by_cursor(engine: Engine, spec: QuerySpec, **kw) -> list[dict]:
    rows, cursor, pages = [], spec.cursor, 0
    while True:
        r = engine.query(QuerySpec(**{**spec.__dict__, "cursor": cursor}), **kw)
        rows += r.rows.to_pylist()
        pages += 1
        assert pages < 100
        if r.next_cursor is None:
            return rows
        cursor = r.next_cursor


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("limit", [1, 3, 4])
def test_cursor_pages_concatenate_to_the_whole_ordered_result(engine: Engine, order: tuple,
                                                              limit: int) -> None:
    whole = engine.query(QuerySpec(order=order, limit=1000)).rows.to_pylist()
    paged = every_page_by_cursor(engine, QuerySpec(order=order, limit=limit))
    assert keys(paged) == keys(whole)
    assert len(set(keys(paged))) == len(paged) == 10


@pytest.mark.parametrize("order", ORDERS)
def test_offset_pages_concatenate_to_the_whole_ordered_result(engine: Engine,
                                                              order: tuple) -> None:
    whole = engine.query(QuerySpec(order=order, limit=1000)).rows.to_pylist()
    paged = []
    for offset in range(0, 12, 3):
        paged += engine.query(QuerySpec(order=order, limit=3, offset=offset)).rows.to_pylist()
    assert keys(paged) == keys(whole)


def test_nulls_sort_last_in_both_directions(engine: Engine) -> None:
    asc = engine.query(QuerySpec(order=("notes",), columns=("notes",))).rows.column("notes")
    desc = engine.query(QuerySpec(order=("-notes",), columns=("notes",))).rows.column("notes")
    assert asc.to_pylist()[-3:] == [None] * 3 and desc.to_pylist()[-3:] == [None] * 3
    assert asc.to_pylist()[:7] == sorted(asc.to_pylist()[:7])


def test_cursor_pages_with_filters_and_search(engine: Engine) -> None:
    spec = QuerySpec(filters=(("mcc__in", "450,440"),), q="e", order=("-updated_at",), limit=2)
    whole = engine.query(QuerySpec(**{**spec.__dict__, "limit": 100})).rows.to_pylist()
    assert keys(every_page_by_cursor(engine, spec)) == keys(whole)


def test_total_is_the_whole_match_on_every_page(engine: Engine) -> None:
    first = engine.query(QuerySpec(limit=4, filters=(("mcc", "450"),)))
    second = engine.query(QuerySpec(limit=4, filters=(("mcc", "450"),),
                                    cursor=first.next_cursor))
    assert first.total == second.total == 6
    assert second.rows.num_rows == 2 and second.next_cursor is None


def test_the_last_page_has_no_cursor(engine: Engine) -> None:
    r = engine.query(QuerySpec(limit=10))
    assert r.rows.num_rows == 10 and r.next_cursor is None
    assert engine.query(QuerySpec(limit=9)).next_cursor is not None


@pytest.mark.parametrize("change", [
    {"filters": (("mcc", "440"),)}, {"order": ("-updated_at",)}, {"q": "volte"},
    {"feature_group": "volte"}, {"table": "changes"},
])
def test_a_cursor_from_another_query_is_rejected(engine: Engine, change: dict) -> None:
    cursor = engine.query(QuerySpec(limit=2)).next_cursor
    with pytest.raises(BadCursor) as info:
        engine.query(QuerySpec(**{"limit": 2, **change, "cursor": cursor}))
    assert "another query" in str(info.value)


def test_changing_only_the_page_size_or_columns_keeps_the_cursor_valid(engine: Engine) -> None:
    cursor = engine.query(QuerySpec(limit=2)).next_cursor
    r = engine.query(QuerySpec(limit=5, columns=("mcc",), cursor=cursor))
    assert r.rows.num_rows == 5


@pytest.mark.parametrize("token", [
    "garbage", "", "e30", "eyJmIjoxfQ", "!!!", encode_cursor(CursorState(2, "x", ()))[:-3],
])
def test_a_tampered_cursor_is_rejected(engine: Engine, token: str) -> None:
    with pytest.raises(BadCursor):
        engine.query(QuerySpec(limit=2, cursor=token or "x"))


def test_cursor_with_offset_is_rejected(engine: Engine) -> None:
    cursor = engine.query(QuerySpec(limit=2)).next_cursor
    with pytest.raises(BadValue):
        engine.query(QuerySpec(limit=2, offset=3, cursor=cursor))


def test_cursor_round_trip_keeps_types(engine: Engine) -> None:
    r = engine.query(QuerySpec(limit=1, order=("-updated_at", "last_run_id")))
    state = decode_cursor(r.next_cursor or "")
    assert state.version == 2
    assert state.values[0] == r.rows.column("last_changed_at")[0].as_py()
    assert isinstance(state.values[1], int)


@pytest.mark.parametrize(("order", "error"), [
    (("nope",), UnknownField), (("-attrs", "x"), UnknownField), (("mcc", "-mcc"), BadValue),
    (("mcc", ""), BadValue),
])
def test_bad_orders(engine: Engine, order: tuple, error: type) -> None:
    with pytest.raises(error):
        engine.query(QuerySpec(order=order))


def test_cannot_sort_by_a_list_column(engine: Engine) -> None:
    with pytest.raises(BadValue) as info:
        engine.query(QuerySpec(table="changes", order=("changed_fields",)))
    assert "cannot sort" in info.value.reason


@pytest.mark.parametrize("limit", [0, -1, 10_001])
def test_limit_bounds(engine: Engine, limit: int) -> None:
    with pytest.raises(BadValue) as info:
        engine.query(QuerySpec(limit=limit))
    assert info.value.field == "limit"


def test_a_cursor_pins_its_version_across_a_publish(root: Path,
                                                    open_engine: Callable[..., Engine]) -> None:
    write_version(root, 1, FEATURES_V1)
    engine = open_engine(root)
    first = engine.query(QuerySpec(limit=4))
    assert first.version == 1
    write_version(root, 2, features_v2())
    assert engine.query(QuerySpec(limit=4)).version == 2  # no cursor: the new version
    rest = every_page_by_cursor(engine, QuerySpec(limit=4, cursor=first.next_cursor))
    v1 = engine.query(QuerySpec(limit=100), version=1).rows.to_pylist()
    assert keys(first.rows.to_pylist() + rest) == keys(v1)
    # asking for another version explicitly with that cursor is an error
    with pytest.raises(BadCursor) as info:
        engine.query(QuerySpec(limit=4, cursor=first.next_cursor), version=2)
    assert "v000001" in str(info.value)


def test_a_cursor_of_a_deleted_version_says_start_again(root: Path,
                                                        open_engine: Callable[..., Engine]
                                                        ) -> None:
    import shutil

    write_version(root, 1, FEATURES_V1)
    engine = open_engine(root)
    cursor = engine.query(QuerySpec(limit=4)).next_cursor
    write_version(root, 2, features_v2())
    shutil.rmtree(root / "versions" / "v000001")
    with pytest.raises(BadCursor) as info:
        engine.query(QuerySpec(limit=4, cursor=cursor))
    assert "no longer kept" in str(info.value)


@pytest.mark.parametrize(("limit", "offset"), [
    (100, 0), (10, 0), (3, 0), (3, 3), (3, 9), (4, 8), (3, 10), (3, 11), (5, 500),
])
def test_total_is_exact_whether_or_not_the_page_tells_it(engine: Engine, limit: int,
                                                         offset: int) -> None:
    # A last page reached by offset gives the total without a count; an empty page past the
    # end, or any page with a next one, needs the count: all must agree with it.
    for filters in [(), (("mcc", "450"),), (("mcc", "999"),)]:
        spec = QuerySpec(limit=limit, offset=offset, filters=filters)
        whole = engine.query(QuerySpec(limit=1000, filters=filters)).rows.num_rows
        r = engine.query(spec)
        assert r.total == whole, (filters, limit, offset)
        assert r.rows.num_rows == max(0, min(limit, whole - offset))
        assert engine.page_text(spec, "json").total == whole


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
@pytest.mark.parametrize("order", [(), ("-updated_at",), ("status", "-mcc"), ("-notes",)])
def test_a_text_page_is_the_export_of_the_same_rows(engine: Engine, fmt: str,
                                                    order: tuple) -> None:
    # Engine.page_text makes the text inside the page's query; it must give the bytes an
    # export of exactly those rows gives, and the same cursor and total as Engine.query.
    spec = QuerySpec(order=order, limit=3, filters=(("mcc__in", "450,440,262"),))
    cursor, seen = None, 0
    while True:
        page_spec = QuerySpec(**{**spec.__dict__, "cursor": cursor})
        text = engine.page_text(page_spec, fmt)
        rows = engine.query(page_spec)
        by_id = QuerySpec(order=order, filters=(
            ("identity_hash__in", ",".join(rows.rows.column("identity_hash").to_pylist())),))
        export = b"".join(engine.export(by_id, fmt).chunks)
        assert text.body == export
        assert (text.total, text.next_cursor, text.rows) == (
            rows.total, rows.next_cursor, rows.rows.num_rows)
        seen += text.rows
        if text.next_cursor is None:
            break
        cursor = text.next_cursor
    assert seen == text.total > 3


def test_a_text_page_of_nothing(engine: Engine) -> None:
    spec = QuerySpec(filters=(("mcc", "999"),))
    assert engine.page_text(spec, "json").body == b"[\n]\n"
    assert engine.page_text(spec, "ndjson").body == b""
    assert engine.page_text(spec, "csv", bom=True).body.startswith(b"\xef\xbb\xbf\"identity_hash\"")
    with pytest.raises(ExportError):
        engine.page_text(spec, "parquet")
