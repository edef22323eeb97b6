"""The filter grammar, exhaustively: every operator, value types, errors, injection attempts."""

from __future__ import annotations

import pytest

from query import (
    BadValue,
    Engine,
    QuerySpec,
    UnknownField,
    UnknownGroup,
    UnknownOperator,
    UnknownTable,
)
from query.filters import OPERATORS, parse_key, split_values
from query.plan import prepare


def names(engine: Engine, **spec) -> list[tuple[str, str, str]]:
    """(feature_name, mcc, mnc) of every matching row, in the default order."""
    r = engine.query(QuerySpec(**spec, limit=1000))
    return [(x["feature_name"], x["mcc"], x["mnc"]) for x in r.rows.to_pylist()]


def filtered(engine: Engine, *pairs: tuple[str, str], **spec) -> list[tuple[str, str, str]]:
    return names(engine, filters=tuple(pairs), **spec)


# Version 2 (current) of the fixture, in the default order (group, name, mcc, mnc):
ALL = [
    ("Test Feature", "001", "01"),
    ("eSIM", "440", "10"), ("eSIM", "450", "05"), ("eSIM Watch", "450", "05"),
    ("RCS", "440", "10"), ("RCS", "450", "06"),
    ("VoLTE", "450", "05"), ("VoLTE", "450", "08"), ("VoLTE Roaming", "310", "260"),
    ("VoLTE Roaming", "450", "05"),
]


def test_no_filter_returns_every_row_in_the_default_order(engine: Engine) -> None:
    assert names(engine) == ALL


@pytest.mark.parametrize(("pairs", "expected"), [
    # exact, list and __in (all the same thing), merged when repeated
    ((("mnc", "08"),), [("VoLTE", "450", "08")]),
    ((("mnc", "08,06"),), [("RCS", "450", "06"), ("VoLTE", "450", "08")]),
    ((("mnc__in", "08,06"),), [("RCS", "450", "06"), ("VoLTE", "450", "08")]),
    ((("mnc", "08"), ("mnc", "06")), [("RCS", "450", "06"), ("VoLTE", "450", "08")]),
    ((("mnc__exact", "08"),), [("VoLTE", "450", "08")]),
    ((("name", "eSIM"),), [("eSIM", "440", "10"), ("eSIM", "450", "05")]),
    # Korean text is matched exactly (and NFC-normalised on the way in)
    ((("operator", "SK텔레콤"),), [("eSIM", "450", "05"), ("eSIM Watch", "450", "05")]),
    # __ne keeps rows where the column is missing
    ((("mcc__ne", "450"),), [("Test Feature", "001", "01"), ("eSIM", "440", "10"),
                             ("RCS", "440", "10"), ("VoLTE Roaming", "310", "260")]),
    ((("value__ne", "1,auto,EVS-WB,opt-in,-5"), ("feature_group", "volte")),
     [("VoLTE", "450", "08"), ("VoLTE Roaming", "310", "260")]),
    ((("notes__contains", "메모"),), [("eSIM", "450", "05")]),
    ((("notes__contains", "said"),), [("VoLTE", "450", "08")]),
    ((("notes__contains", "SAID"),), []),
    ((("notes__icontains", "SAID"),), [("VoLTE", "450", "08")]),
    ((("notes__contains", "line two"),), [("VoLTE Roaming", "310", "260")]),
    ((("feature_name__startswith", "VoLTE R"),), [("VoLTE Roaming", "310", "260"),
                                                  ("VoLTE Roaming", "450", "05")]),
    ((("mcc__gt", "440"),), [("eSIM", "450", "05"), ("eSIM Watch", "450", "05"),
                             ("RCS", "450", "06"), ("VoLTE", "450", "05"),
                             ("VoLTE", "450", "08"), ("VoLTE Roaming", "450", "05")]),
    ((("mcc__lt", "440"),), [("Test Feature", "001", "01"), ("VoLTE Roaming", "310", "260")]),
    ((("mcc__lte", "440"), ("mcc__gte", "440")), [("eSIM", "440", "10"), ("RCS", "440", "10")]),
    ((("updated_at__gte", "2026-11-08"),), [("eSIM Watch", "450", "05"), ("RCS", "440", "10"),
                                            ("VoLTE", "450", "05"), ("VoLTE", "450", "08")]),
    ((("updated_at__lt", "2026-11-03T09:00:00+00:00"),), []),
    ((("updated_at__lte", "2026-11-03T18:00:00+09:00"),), [("VoLTE Roaming", "310", "260"),
                                                           ("VoLTE Roaming", "450", "05")]),
    ((("last_run_id", "2"),), [("RCS", "440", "10"), ("VoLTE", "450", "05"),
                              ("VoLTE", "450", "08")]),
    ((("last_run_id__gt", "1"), ("status", "enabled")), [("VoLTE", "450", "05"),
                                                         ("VoLTE", "450", "08")]),
    ((("notes__isnull", "true"),), [("eSIM Watch", "450", "05"), ("RCS", "440", "10"),
                                    ("VoLTE Roaming", "450", "05")]),
    ((("country__isnull", "TRUE"),), [("Test Feature", "001", "01")]),
    ((("value__isnull", "false"), ("feature_group", "esim")), [("eSIM", "450", "05"),
                                                               ("eSIM Watch", "450", "05")]),
    # a comma inside a value is written \,
    ((("notes", r"He said \"soon\"\, maybe".replace('\\"', '"')),), [("VoLTE", "450", "08")]),
    # the group "001" stays text: a number would not match, and 1 does not equal "001"
    ((("feature_group", "001"),), [("Test Feature", "001", "01")]),
    ((("feature_group", "1"),), []),
])
def test_filter(engine: Engine, pairs: tuple[tuple[str, str], ...],
                expected: list[tuple[str, str, str]]) -> None:
    assert filtered(engine, *pairs) == expected


@pytest.mark.parametrize("value", [
    "x' OR '1'='1", "volte' --", "volte'; DROP TABLE features; --", '") OR ("1"="1',
    "$p0", "?", "volte\x1a", "%", "_",
])
def test_injection_attempts_in_values_are_just_values(engine: Engine, value: str) -> None:
    assert filtered(engine, ("feature_group", value)) == []
    assert filtered(engine, ("notes__contains", value)) == []


@pytest.mark.parametrize("key", [
    "feature_group) OR (1=1", "mcc OR 1", "1", "*", "features.mcc", '"mcc"', "mcc;", "",
])
def test_injection_attempts_in_field_names_are_unknown_fields(engine: Engine, key: str) -> None:
    with pytest.raises(UnknownField) as info:
        filtered(engine, (key, "450"))
    assert info.value.field == key
    assert "feature_name" in info.value.valid and "updated_at" in info.value.valid


def test_values_never_reach_the_sql_text(engine: Engine) -> None:
    evil = "x' OR '1'='1"
    snap = engine.snapshot()
    spec = QuerySpec(filters=(("feature_group", evil), ("notes__icontains", evil),
                              ("mcc__in", f"{evil},450")), q=evil, order=("-updated_at",))
    prep = prepare(spec, version=snap.version, files=snap.files("features"),
                   schema=engine.schema("features"))
    for st in (prep.page(), prep.count(), prep.stream(), prep.facet("status", 5)):
        assert evil not in st.sql and "'1'" not in st.sql
        assert evil in st.params.values()


@pytest.mark.parametrize("columns", [("*",), ("mcc", "*"), ("count(*)",), ("mcc, 1",)])
def test_columns_star_and_expressions_are_unknown_fields(engine: Engine,
                                                        columns: tuple[str, ...]) -> None:
    with pytest.raises(UnknownField) as info:
        engine.query(QuerySpec(columns=columns))
    assert "identity_hash" in str(info.value)


@pytest.mark.parametrize(("key", "op"), [
    ("mcc__like", "like"), ("mcc__regex", "regex"), ("mcc__", ""), ("mcc__IN", "IN"),
    ("notes__contains__x", "x"),
])
def test_unknown_operator_lists_the_valid_ones(engine: Engine, key: str, op: str) -> None:
    with pytest.raises(UnknownOperator) as info:
        filtered(engine, (key, "1"))
    assert info.value.op == op
    assert info.value.valid == OPERATORS
    assert "icontains" in str(info.value)


@pytest.mark.parametrize(("key", "valid_has", "valid_lacks"), [
    ("last_run_id__contains", "gte", "contains"),
    ("updated_at__startswith", "lt", "startswith"),
])
def test_operator_not_valid_for_the_column_type(engine: Engine, key: str, valid_has: str,
                                                valid_lacks: str) -> None:
    with pytest.raises(UnknownOperator) as info:
        filtered(engine, (key, "1"))
    assert valid_has in info.value.valid and valid_lacks not in info.value.valid
    assert info.value.field == key.split("__")[0]


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("last_run_id", "two", "not a valid integer"),
    ("last_run_id__gt", "1.5", "not a valid integer"),
    ("updated_at__gte", "yesterday", "not a valid timestamp"),
    ("updated_at__gte", "2026-13-01", "not a valid timestamp"),
    ("notes__isnull", "maybe", "true or false"),
    ("mcc", "", "empty value"),
    ("mcc", "450,", "empty value"),
    ("mcc", "x" * 1001, "longer than"),
    ("mcc", "45\x000", "NUL"),
])
def test_bad_values_name_the_field_and_the_reason(engine: Engine, key: str, value: str,
                                                  reason: str) -> None:
    with pytest.raises(BadValue) as info:
        filtered(engine, (key, value))
    assert reason in info.value.reason
    assert info.value.field == key


def test_list_column_contains_an_element(engine: Engine) -> None:
    r = engine.query(QuerySpec(table="changes", filters=(("changed_fields__contains", "notes"),)))
    assert r.rows.column("id").to_pylist() == [3]
    r = engine.query(QuerySpec(table="changes", filters=(("changed_fields__isnull", "true"),)))
    assert r.rows.column("id").to_pylist() == [1]
    with pytest.raises(UnknownOperator):
        engine.query(QuerySpec(table="changes", filters=(("changed_fields", "notes"),)))


@pytest.mark.parametrize(("table", "pairs", "column", "expected"), [
    ("changes", (("op", "U"),), "id", [3, 2]),
    ("changes", (("changed_at__gte", "2026-11-02"), ("feature_group", "volte")), "id", [2]),
    ("runs", (("day", "2026-11-02"),), "id", [2]),
    ("runs", (("error_summary__isnull", "false"),), "id", [2]),
    ("daily_counts", (("errors__gt", "0"),), "updated", [2]),
    ("name_map", (("kind", "operator"),), "canonical", ["SK Telecom", "SK텔레콤"]),
    ("mcc_mnc_map", (("country_code__in", "KR,DE"),), "operator",
     ["Telekom Deutschland", "SK Telecom", "KT"]),
])
def test_filters_apply_to_every_table(engine: Engine, table: str, pairs: tuple,
                                      column: str, expected: list) -> None:
    r = engine.query(QuerySpec(table=table, filters=pairs))
    assert r.rows.column(column).to_pylist() == expected


def test_unknown_table(engine: Engine) -> None:
    with pytest.raises(UnknownTable) as info:
        engine.query(QuerySpec(table="run_errors"))
    assert "mcc_mnc_map" in str(info.value)


@pytest.mark.parametrize("group", ["volte", "esim", "001"])
def test_group_path_parameter_reads_only_that_partition(engine: Engine, group: str) -> None:
    r = engine.query(QuerySpec(feature_group=group, limit=1000))
    assert set(r.rows.column("feature_group").to_pylist()) == {group}
    assert r.total == engine.snapshot().groups()[group]
    snap = engine.snapshot()
    prep = prepare(QuerySpec(feature_group=group), version=snap.version,
                   files=snap.files("features", group), schema=engine.schema())
    assert len(prep.files) == 1 and f"feature_group={group}" in prep.files[0]


@pytest.mark.parametrize("group", ["VoLTE", "nope", "x' OR '1'='1", "../runs", "1"])
def test_unknown_group_lists_the_groups(engine: Engine, group: str) -> None:
    with pytest.raises(UnknownGroup) as info:
        engine.query(QuerySpec(feature_group=group))
    assert info.value.valid == ("001", "esim", "rcs", "volte")


@pytest.mark.parametrize(("q", "expected"), [
    ("메모", [("eSIM", "450", "05")]),
    ("watch", [("eSIM Watch", "450", "05")]),
    ("soon", [("VoLTE", "450", "08")]),
    ("ntt", [("eSIM", "440", "10"), ("RCS", "440", "10")]),
    ("ntt esim", [("eSIM", "440", "10")]),
    ("auto EVS", []),
    ("  ", ALL),
    ("x' OR '1'='1", []),
])
def test_free_text_search(engine: Engine, q: str, expected: list) -> None:
    assert names(engine, q=q) == expected


def test_search_combines_with_filters_and_group(engine: Engine) -> None:
    assert names(engine, q="volte", feature_group="volte", filters=(("mnc", "05"),)) == [
        ("VoLTE", "450", "05"), ("VoLTE Roaming", "450", "05")]


def test_search_on_a_table_without_search_columns(engine: Engine) -> None:
    with pytest.raises(BadValue) as info:
        engine.query(QuerySpec(table="daily_counts", q="x"))
    assert info.value.field == "q"


@pytest.mark.parametrize(("raw", "values"), [
    ("a,b", ["a", "b"]), (r"a\,b", ["a,b"]), ("a\\\\,b", ["a\\", "b"]), ("a", ["a"]),
    (r"a\b", [r"a\b"]), (",", ["", ""]),
])
def test_split_values(raw: str, values: list[str]) -> None:
    assert split_values(raw) == values


@pytest.mark.parametrize(("key", "parsed"), [
    ("mcc", ("mcc", "exact")), ("mcc__in", ("mcc", "in")), ("a__b__gte", ("a__b", "gte")),
])
def test_parse_key(key: str, parsed: tuple[str, str]) -> None:
    assert parse_key(key) == parsed


def test_from_params_separates_reserved_parameters_from_filters() -> None:
    spec = QuerySpec.from_params(
        [("mcc", "450"), ("columns", "name,mcc"), ("order", "-updated_at,name"),
         ("limit", "5"), ("offset", "10"), ("q", "volte"), ("format", "csv"), ("mcc", "440")],
        feature_group="volte", ignore=("format",))
    assert spec == QuerySpec(table="features", feature_group="volte",
                             filters=(("mcc", "450"), ("mcc", "440")), q="volte",
                             columns=("name", "mcc"), order=("-updated_at", "name"), limit=5,
                             offset=10)
    assert QuerySpec.from_params({"status": ["on", "off"]}).filters == (("status", "on"),
                                                                         ("status", "off"))


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "ten"}, "limit"), ({"offset": "1.5"}, "offset"),
    ([("order", "a"), ("order", "b")], "order"),
])
def test_from_params_bad_reserved_values(params, field: str) -> None:
    with pytest.raises(BadValue) as info:
        QuerySpec.from_params(params)
    assert info.value.field == field


def test_columns_projection_and_aliases(engine: Engine) -> None:
    r = engine.query(QuerySpec(columns=("name", "mcc", "updated_at"), feature_group="001"))
    assert r.columns == ("feature_name", "mcc", "last_changed_at")
    assert r.rows.column_names == ["feature_name", "mcc", "last_changed_at"]
    with pytest.raises(BadValue):
        engine.query(QuerySpec(columns=("name", "feature_name")))
