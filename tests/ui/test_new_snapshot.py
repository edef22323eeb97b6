"""A newly published snapshot shows up without a restart, and results of the old one are
never served for it (every cached read is keyed by the snapshot version)."""

from __future__ import annotations

import pytest

from lake.publish import publish_snapshot
from ledger.sync import plan_sync, run_sync
from tests.ledger.helpers import write_csv
from tests.ui.conftest import UiEnv, day2_rows, page_app

pytestmark = pytest.mark.usefixtures("use_env")


def matched(at) -> str:
    return next(m.value for m in at.markdown if "feature(s) match" in m.value)


def test_a_new_snapshot_is_read_on_the_next_render(ui_env: UiEnv):
    overview = page_app("overview").run()
    home = page_app("home").run()
    v2 = f"v{ui_env.versions[1]:06d}"
    assert matched(overview) == f"**65** feature(s) match · {v2}"
    assert any(v2 in m.value for m in home.markdown)

    rows = [*day2_rows(), ("rcs", "Chatbot", "450", "08", "enabled", "1", "lee", "2026-11-03")]
    write_csv(ui_env.root / "extract.csv", rows)
    run = run_sync(ui_env.settings, plan_sync(ui_env.settings, trigger="test"))
    v3 = publish_snapshot(ui_env.settings, run.run_id).version

    overview.run()  # the same sessions, no restart
    home.run()
    assert matched(overview) == f"**66** feature(s) match · v{v3:06d}"
    assert any(f"v{v3:06d}" in m.value for m in home.markdown)
    assert {m.label: m.value for m in home.metric}["Created"] == "68"
