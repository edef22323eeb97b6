"""The explorer stays in its room: it reads through `query/`, reaches dev data only over HTTP,
and touches the ledger only through `ledger.explorer` (page views, SLA status)."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"
FIRST_PARTY = ("fmw", "ledger", "lake", "query", "api", "ui", "scheduler")
ALLOWED = ("fmw.settings", "fmw.errors", "fmw.render", "fmw.net", "fmw.logs", "query", "ui",
           "ledger.explorer", "ledger.db",  # fmw.logs: Streamlit's output into a service's log
           "fmw.relay",  # the Dev page signs the person's address for the dev API
           "fmw.authconfig")  # the settings' [auth] table: sign-in, roles, row scopes
LEDGER_USERS = {"usage.py",  # the page-view recorder's background thread
                "server.py"}  # the download route audits a scoped user's download


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_ui_imports_only_query_and_its_own_modules():
    for path in sorted(UI.glob("*.py")):
        for name in imports(path):
            if name.split(".")[0] not in FIRST_PARTY:
                continue
            assert name.startswith(ALLOWED), f"{path.name} imports {name}"
            if name.startswith("ledger"):
                assert path.name in LEDGER_USERS, f"{path.name} imports {name}"


def test_the_dev_page_talks_http_only():
    for name in ("dev.py", "devapi.py"):
        found = imports(UI / name)
        assert not any(n.startswith(("ledger", "api", "psycopg", "duckdb")) for n in found)


def test_ui_runs_no_sql_of_its_own():
    for path in sorted(UI.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "psycopg" not in text and "import duckdb" not in text, path.name
        assert ".execute(" not in text, path.name
