"""The scheduler room imports only ledger, lake and fmw at module level and builds no SQL;
the service host reaches the API and the UI lazily, inside the functions that start them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOM = Path(__file__).resolve().parents[2] / "scheduler"
ALLOWED = ("scheduler", "ledger", "lake", "fmw")
FIRST_PARTY = ("fmw", "ledger", "lake", "query", "api", "ui", "scheduler", "deploy")
# A keyword followed by more: sc.exe's lone verbs ("create", "delete") are not SQL.
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|LOCK)\s+\S", re.I)


def test_module_level_imports_stay_in_the_allowed_rooms() -> None:
    for path in ROOM.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FIRST_PARTY:
                    assert name.startswith(ALLOWED), f"{path.name} imports {name}"


def test_no_sql_outside_ledger() -> None:
    for path in ROOM.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not SQL.match(node.value), f"{path.name}: {node.value[:40]!r}"
