"""Documentation is tested: every CLI command appears in the README."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fmw.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands(parser: argparse.ArgumentParser, prefix: str = "fmw") -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix} {name}")
                out.extend(nested or [f"{prefix} {name}"])
    return out


COMMANDS = _commands(build_parser())


def test_the_parser_has_the_commands_the_issue_asks_for():
    for cmd in ("fmw init", "fmw db upgrade", "fmw db url", "fmw sync", "fmw runs", "fmw changes",
                "fmw namemap import", "fmw namemap export", "fmw mccmnc load", "fmw demo"):
        assert cmd in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_cli_command_is_documented_in_the_readme(command):
    assert f"`{command}" in README, f"{command} is missing from README.md"


def test_readme_quick_start_has_exactly_two_commands():
    section = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = section.split("```", 2)[1]
    lines = [ln for ln in block.strip().splitlines() if ln.strip()]
    assert lines == ["python quickstart.py demo", "python quickstart.py test"]
