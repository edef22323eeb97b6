"""The Overview's URL <-> filters <-> QuerySpec mapping (pure, no Streamlit)."""

from __future__ import annotations

import pytest

from query.filters import parse_filters, split_values
from ui.viewstate import (
    DEFAULT_COLUMNS,
    ViewState,
    escape,
    format_advanced,
    parse_advanced,
    parse_params,
    query_string,
    validate,
)
from ui.widgets import api_origin, header


def test_a_url_round_trips_through_the_view_state():
    params = {"feature_group": ["volte"], "status": ["enabled", "testing"],
              "country": [r"Korea\, Republic of"], "mcc": ["450"], "q": ["roaming"],
              "columns": ["feature_name,status"], "order": ["-last_changed_at"],
              "owner__icontains": ["kim"], "page": ["3"], "size": ["50"]}
    state, errors = parse_params(params)
    assert errors == []
    assert state.group == "volte"
    assert state.chosen("status") == ("enabled", "testing")
    assert state.chosen("country") == ("Korea, Republic of",)
    assert state.extra == (("owner__icontains", "kim"),)
    assert (state.page, state.size) == (3, 50)
    assert state.to_params() == params


def test_values_with_commas_are_escaped_for_the_query_layer():
    state = ViewState().with_choice("country", ["Korea, Republic of", "Japan"])
    pairs = state.filter_pairs()
    assert pairs == [("country", r"Korea\, Republic of"), ("country", "Japan")]
    assert [split_values(v) for _, v in pairs] == [["Korea, Republic of"], ["Japan"]]
    assert escape("a\\b,c") == "a\\\\b\\,c"


def test_spec_pages_with_limit_and_offset_and_export_reads_every_row():
    state = ViewState(group="volte", q=" x ", page=3, size=25, order="-mcc,mnc",
                      columns=("mcc", "mnc"))
    paged = state.spec()
    assert (paged.feature_group, paged.q, paged.limit, paged.offset) == ("volte", "x", 25, 50)
    assert paged.order == ("-mcc", "mnc") and paged.columns == ("mcc", "mnc")
    full = state.spec(paged=False)
    assert full.limit is None and full.offset == 0


def test_a_facet_is_counted_without_its_own_filter():
    state = ViewState(mcc="450").with_choice("status", ["enabled"]).with_choice("region", ["Asia"])
    assert ("status", "enabled") not in state.filter_pairs(without="status")
    assert ("region", "Asia") in state.filter_pairs(without="status")
    assert ("mcc", "450") in state.filter_pairs(without="status")


def test_api_pairs_are_the_same_view_as_the_v1_api_query():
    state = ViewState(group="rcs", q="chat", columns=("mcc", "status"),
                      order="mcc").with_choice("status", ["enabled"])
    assert state.api_path() == "/api/v1/features/rcs"
    assert query_string(state.api_pairs()) == "status=enabled&q=chat&columns=mcc,status&order=mcc"
    parse_filters(state.filter_pairs())  # valid filter syntax


@pytest.mark.parametrize(("mcc", "mnc", "message"), [
    ("45", "", "MCC '45' is not 3 digits"),
    ("450,4x0", "", "MCC '4x0' is not 3 digits"),
    ("", "5", "MNC '5' is not 2 or 3 digits"),
    ("", "0512", "MNC '0512' is not 2 or 3 digits"),
])
def test_a_bad_mcc_or_mnc_says_why(mcc, mnc, message):
    problems = validate(ViewState(mcc=mcc, mnc=mnc))
    assert len(problems) == 1 and problems[0].startswith(message)


def test_good_mcc_and_mnc_lists_pass():
    assert validate(ViewState(mcc="450, 440", mnc="05,010")) == []


def test_bad_page_and_size_in_a_url_fall_back_and_say_so():
    state, errors = parse_params({"page": ["x"], "size": ["100000"]}, default_size=100)
    assert (state.page, state.size) == (1, 100)
    assert any("page='x' is not a whole number" in e for e in errors)
    assert any("size=100000 must be between 1 and 1000" in e for e in errors)


def test_reserved_parameters_in_a_url_are_reported_not_used_as_filters():
    state, errors = parse_params({"cursor": ["abc"], "limit": ["5"]})
    assert state.extra == ()
    assert len(errors) == 2


def test_advanced_filters_parse_and_report_bad_syntax():
    pairs, problems = parse_advanced("owner__icontains=kim&last_changed_at__gte=2026-11-01")
    assert pairs == (("owner__icontains", "kim"), ("last_changed_at__gte", "2026-11-01"))
    assert problems == []
    assert format_advanced(pairs) == "owner__icontains=kim&last_changed_at__gte=2026-11-01"
    _, problems = parse_advanced("owner kim")
    assert problems and "field=value" in problems[0]
    _, problems = parse_advanced("status=enabled")
    assert problems and "own control" in problems[0]


def test_notes_are_among_the_default_columns():
    assert "notes" in DEFAULT_COLUMNS


@pytest.mark.parametrize(("column", "title"), [
    ("feature_name", "Feature"), ("mcc", "MCC"), ("last_changed_at", "Last changed"),
    ("some_new_field", "Some new field"),
])
def test_grid_columns_have_human_titles(column, title):
    assert header(column) == title


@pytest.mark.parametrize(("browser", "headers", "base", "want"), [
    # behind Nginx: the API beside the explorer, on the host (and prefix) the user came from
    ("https://fmw.corp.example/streamlit/overview", {"X-Forwarded-For": "10.1.2.3"},
     "streamlit", "https://fmw.corp.example"),
    ("https://fmw.corp.example:8443/tools/streamlit/overview",
     {"x-forwarded-for": "10.1.2.3"}, "streamlit", "https://fmw.corp.example:8443/tools"),
    ("http://10.0.0.5/overview", {"X-Forwarded-For": "10.1.2.3"}, "", "http://10.0.0.5"),
    # reached directly (no proxy): the configured API address
    ("http://127.0.0.1:8501/overview", {}, "", "http://127.0.0.1:8000"),
    (None, {"X-Forwarded-For": "10.1.2.3"}, "streamlit", "http://127.0.0.1:8000"),
])
def test_the_api_link_goes_through_the_host_the_user_came_from(browser, headers, base, want):
    assert api_origin(browser, headers, base, "http://127.0.0.1:8000/") == want
