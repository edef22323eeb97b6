"""Row scopes on every page (issue 14), through Streamlit's AppTest with a signed-in user.

The explorer runs with ``auth.mode = "oidc"`` over the real snapshot of `conftest` (3 groups,
6 networks); `AppTest.user` is what ``st.user`` holds after a sign-in. The scoped user of group
``fmw-ims`` sees volte and rcs on MCC 450 only: every expected figure below is counted from the
synced source rows (`conftest.day2_rows`) or the unscoped change table, not by the query layer's
scope code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fmw.authconfig import AuthConfig, RoleRule
from query import QuerySpec
from tests.ui.conftest import UiEnv, day2_rows
from ui import context, downloads, reads
from ui.access import resolve_viewer

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"
ROLES = (RoleRule("fmw-admins", "admin"), RoleRule("fmw-readers", "viewer"),
         RoleRule("fmw-ims", "scoped", feature_groups=("volte", "rcs"), mccs=("450",)))
AUTH = AuthConfig(mode="oidc", issuer="http://127.0.0.1:9", client_id="fmw-explorer",
                  client_secret="x", roles=ROLES)
SCOPED = {"is_logged_in": True, "sub": "carol", "name": "Carol Scoped", "groups": ["fmw-ims"],
          "tokens": {"access": "not-a-real-token"}}
ADMIN = {"is_logged_in": True, "sub": "alice", "name": "Alice Admin", "groups": ["fmw-admins"]}
SCOPE = resolve_viewer(AUTH, SCOPED).scope
IN_GROUPS, IN_MCC = ("volte", "rcs"), "450"


def in_scope(group: object, mcc: object) -> bool:
    return group in IN_GROUPS and mcc == IN_MCC


EXPECTED = sum(1 for r in day2_rows() if in_scope(r[0], r[2]))


@pytest.fixture
def oidc_env(ui_env: UiEnv) -> Iterator[UiEnv]:
    context.use(dataclasses.replace(ui_env.settings, auth=AUTH))
    yield ui_env
    context._injected = None


def run(page: str, who: dict[str, object], **params: str) -> AppTest:
    at = AppTest.from_string(f"from ui.{page} import page\npage()\n", default_timeout=60)
    at.user = dict(who)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def texts(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown) + " " + " ".join(c.value for c in at.caption)


pytestmark = pytest.mark.usefixtures("oidc_env")


def test_overview_counts_lists_and_downloads_only_the_scope(ui_env: UiEnv):
    assert 0 < EXPECTED < len(day2_rows())
    at = run("overview", SCOPED)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"**{EXPECTED:,}** feature(s) match" in texts(at)
    assert "send `Authorization: Bearer <token>`: a personal API token" in texts(at)
    group = at.sidebar.selectbox(key="ov_feature_group")
    assert [o.split(" · ")[0] for o in group.options] == ["(all groups)", "rcs", "volte"]
    countries = at.sidebar.multiselect(key="ov_country").options
    assert countries and all("Korea" in c for c in countries), countries
    # the download link carries the scope it was issued with
    ticket = next(t for t in downloads.TICKETS._tokens.values()
                  if t.fmt == "csv" and t.spec.scope == SCOPE)
    body = reads.export_bytes(ticket.engine, ticket.version, ticket.spec, "csv")
    lines = body.decode("utf-8-sig").splitlines()
    assert len(lines) == EXPECTED + 1
    engine = context.engine(ui_env.settings)
    unscoped = dataclasses.replace(ticket.spec, scope=None)
    assert reads.rows_of(engine, ticket.version, unscoped).num_rows == len(day2_rows())


def test_an_out_of_scope_group_in_the_url_shows_no_rows_and_names_only_visible_groups():
    at = run("overview", SCOPED, feature_group="vonr")
    problems = " ".join(e.value for e in at.error)
    assert "vonr" in problems and "volte" in problems and "rcs" in problems
    assert "feature(s) match" not in texts(at)
    assert not any(t.spec.feature_group == "vonr" for t in downloads.TICKETS._tokens.values()
                   if t.spec.scope == SCOPE)


def test_a_viewer_and_an_admin_see_every_row():
    for who in (ADMIN, {**ADMIN, "groups": ["fmw-readers"]}):
        at = run("overview", who)
        assert f"**{len(day2_rows()):,}** feature(s) match" in texts(at)


def scoped_changes(ui_env: UiEnv) -> list[dict[str, object]]:
    """The snapshot's changes in scope, filtered here from the unscoped table."""
    engine = context.engine(ui_env.settings)
    rows = reads.rows_of(engine, ui_env.versions[1], QuerySpec(
        table="changes", columns=("id", "op", "feature_group", "changed_at", "before_json",
                                  "after_json"))).to_pylist()
    out = []
    for r in rows:
        d = json.loads(r["after_json"] or r["before_json"])
        if in_scope(r["feature_group"], d.get("mcc")):
            out.append(r)
    return out


def test_home_counts_only_the_scopes_changes_and_hides_runs_errors_and_operations(
        ui_env: UiEnv):
    at = run("home", SCOPED)
    assert not at.exception and not at.error
    cards = {m.label: m.value for m in at.metric}
    week_ago = datetime.now(UTC) - timedelta(days=6)
    mine = [c for c in scoped_changes(ui_env) if c["changed_at"] >= week_ago.replace(hour=0)]
    assert cards == {"Created": f"{sum(c['op'] == 'C' for c in mine):,}",
                     "Updated": f"{sum(c['op'] == 'U' for c in mine):,}",
                     "Deleted": f"{sum(c['op'] == 'D' for c in mine):,}"}
    text = texts(at)
    assert f"{EXPECTED} features you can see in 2 groups" in text
    assert "Run **" not in text and "Last sync" not in text and "SLA" not in text
    assert "Explorer usage" not in " ".join(e.label for e in at.expander)


def test_home_for_an_admin_keeps_runs_and_the_operations_row(ui_env: UiEnv):
    at = run("home", ADMIN)
    assert "Errors" in {m.label for m in at.metric}
    assert f"Run **{ui_env.runs[1]}**" in texts(at)


def test_history_lists_only_the_scopes_changes(ui_env: UiEnv):
    at = run("history", SCOPED)
    assert not at.exception and not at.error
    assert at.selectbox(key="hi_group").options == ["(all groups)", "rcs", "volte"]
    assert f"{len(scoped_changes(ui_env)):,} change(s)" in texts(at)


def test_the_feature_page_offers_only_the_scopes_groups():
    at = run("feature", SCOPED)
    assert not at.exception
    assert at.selectbox(key="ft_group").options == ["(all groups)", "rcs", "volte"]


def test_dev_refuses_a_scoped_user_even_by_direct_url():
    at = run("dev", SCOPED)
    assert [e.value for e in at.error] == ["This page is for admins only."]
    assert not at.text_area and not at.text_input


def test_the_sql_page_of_a_scoped_user_reads_only_the_scope():
    at = run("sql", SCOPED, sql="SELECT count(*) AS n, count(DISTINCT feature_group) AS g "
                                "FROM features WHERE mcc = '450'", limit="10")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.dataframe[0].value.to_dict("records") == [{"n": EXPECTED, "g": 2}]
    assert "only the rows you may see" in texts(at)
    # no way around the restricted views: other tables, schemas, files
    for text in ("SELECT * FROM runs", "SELECT * FROM read_parquet('**/*.parquet')",
                 "SUMMARIZE features"):
        at = run("sql", SCOPED, sql=text, limit="10")
        assert at.error and "not run" in at.error[0].value, text
        assert not at.dataframe


# --- the gate in front of every page --------------------------------------------------------

def app(who: dict[str, object]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = dict(who)
    return at.run()


def test_signed_out_sees_the_sign_in_page_and_nothing_else():
    at = app({"is_logged_in": False})
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert [t.value for t in at.title] == ["FMW explorer"]
    assert not at.metric and not at.dataframe and not at.sidebar.markdown


def test_a_user_without_a_role_is_told_so_and_can_sign_out():
    at = app({"is_logged_in": True, "name": "Dave Nobody", "groups": ["other"]})
    assert "Dave Nobody" in at.warning[0].value
    assert [b.label for b in at.button] == ["Sign out"]
    assert not at.metric and not at.dataframe


def test_a_signed_in_user_sees_who_and_the_role_in_the_sidebar():
    at = app(SCOPED)
    assert not at.exception
    side = " ".join(m.value for m in at.sidebar.markdown)
    assert "Signed in as **Carol Scoped** · scoped" in side
    assert "Sign out" in [b.label for b in at.sidebar.button]
    at.sidebar.button(key="fmw_sign_out").click().run()
    assert not at.metric and not at.dataframe
    at.run()  # the browser comes back from the provider's sign-out
    assert [b.label for b in at.button] == ["Sign in"]  # st.logout: signed out again
