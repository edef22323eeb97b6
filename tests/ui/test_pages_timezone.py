"""Issue 12 §2: one time zone everywhere, labelled. With `timezone = "Asia/Seoul"` every page
shows its times in Seoul time and says so; before, Home showed Seoul time and the other pages
UTC, and none said which."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from query import QuerySpec
from tests.ui.conftest import UiEnv, page_app
from ui import context, timefmt
from ui.config import ui_config

SEOUL = "Asia/Seoul"
LABEL = "Times in Asia/Seoul (UTC+09:00)"


@pytest.fixture
def seoul(ui_env: UiEnv) -> Iterator[UiEnv]:
    context.use(ui_env.settings, dataclasses.replace(ui_config(ui_env.settings),
                                                     timezone=SEOUL))
    yield ui_env
    context._injected = None


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def seoul_text(value: datetime) -> str:
    return value.astimezone(ZoneInfo(SEOUL)).strftime("%Y-%m-%d %H:%M")


def column_settings(element) -> dict:
    return json.loads(element.proto.columns or "{}")


def test_timefmt_labels_and_converts():
    winter = datetime(2026, 12, 7, 11, 45, tzinfo=UTC)
    assert timefmt.caption(SEOUL, winter) == LABEL
    assert timefmt.caption("UTC", winter) == "Times in UTC"
    assert timefmt.caption("Europe/Berlin", datetime(2026, 7, 1, tzinfo=UTC)) == \
        "Times in Europe/Berlin (UTC+02:00)"
    assert timefmt.offset("America/St_Johns", winter) == "UTC-03:30"
    assert timefmt.fmt(winter, SEOUL) == "2026-12-07 20:45"
    assert timefmt.fmt("2026-12-07T11:45:00Z", SEOUL) == "2026-12-07 20:45"
    assert timefmt.fmt("2026-12-07T11:45:00", SEOUL) == "2026-12-07 20:45"  # naive is UTC
    assert timefmt.fmt(None, SEOUL) == "–" and timefmt.fmt("", SEOUL, "") == ""
    assert timefmt.day_start(date(2026, 12, 7), SEOUL).isoformat() == \
        "2026-12-07T00:00:00+09:00"
    table = pa.table({"at": pa.array([winter.replace(tzinfo=None)], pa.timestamp("us")),
                      "n": [1]})
    shown = timefmt.to_zone(table, SEOUL)
    assert shown.schema.field("at").type == pa.timestamp("us", tz=SEOUL)
    assert shown.column("at").to_pylist()[0] == winter  # the same instant
    config = timefmt.column_config(shown, SEOUL)
    assert list(config) == ["at"]
    assert config["at"]["label"] == "at (UTC+09:00)"
    assert config["at"]["type_config"]["timezone"] == SEOUL


def test_home_says_which_zone_and_shows_the_last_sync_in_it(seoul: UiEnv):
    at = page_app("home").run()
    assert not at.exception
    assert LABEL in captions(at)
    run = context.engine(seoul.settings).query(QuerySpec(table="runs", limit=1)).rows
    ended = run.column("finished_at").to_pylist()[0]
    assert any(f"at {seoul_text(ended)}" in m.value for m in at.markdown)


def test_feature_timeline_is_in_the_zone_and_labelled(seoul: UiEnv):
    engine = context.engine(seoul.settings)
    row = engine.query(QuerySpec(feature_group="rcs", filters=(("feature_name", "Feature 00"),
                                                               ("mcc", "450"), ("mnc", "08")))
                       ).rows.to_pylist()[0]
    changes = engine.query(QuerySpec(table="changes", order=("changed_at", "id"), filters=(
        ("identity_hash", row["identity_hash"]),))).rows.to_pylist()
    at = page_app("feature")
    at.query_params.update(feature_group="rcs", feature_name="Feature 00",
                           identity=row["identity_hash"])
    at.run()
    assert not at.exception
    titles = [e.label for e in at.expander]
    assert [t.split(" · ")[0] for t in titles] == [seoul_text(c["changed_at"]) for c in changes]
    assert LABEL in captions(at)


def test_history_list_is_in_the_zone_and_labelled(seoul: UiEnv):
    at = page_app("history").run()
    assert not at.exception, at.exception
    grid = at.dataframe[0]
    shown = grid.value["changed at"]
    assert str(shown.dt.tz) == SEOUL
    settings = column_settings(grid)
    changed_at = next(v for v in settings.values() if v.get("label", "").startswith("changed at"))
    assert changed_at["label"] == "changed at (UTC+09:00)"
    assert changed_at["type_config"]["timezone"] == SEOUL
    assert LABEL in captions(at)


def test_history_days_are_whole_days_in_the_zone():
    from ui.history import change_filters
    filters = dict(change_filters(date(2026, 12, 1), date(2026, 12, 2), None, None, ["U"],
                                  SEOUL))
    assert filters["changed_at__gte"] == "2026-12-01T00:00:00+09:00"
    assert filters["changed_at__lt"] == "2026-12-03T00:00:00+09:00"


def test_overview_times_are_in_the_zone_and_their_headers_say_so(seoul: UiEnv):
    at = page_app("overview").run()
    assert not at.exception, at.exception
    grid = at.dataframe[0]
    assert str(grid.value["last_changed_at"].dt.tz) == SEOUL
    settings = column_settings(grid)
    times = [v for v in settings.values() if v.get("type_config", {}).get("timezone")]
    assert times and all(v["type_config"]["timezone"] == SEOUL for v in times)
    assert all(v["label"].endswith("(UTC+09:00)") for v in times), times
