"""`fmw` with the explorer's commands, as `python tests/ui/fmw_with_ui.py ARGS` (for the tests
until fmw/cli.py registers fmw.cli_ui itself; afterwards this is plain `fmw`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fmw import cli, cli_ui  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = original()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "ui" not in sub.choices:
        cli_ui.register(sub)
    return parser


original = cli.build_parser
cli.build_parser = build_parser

if __name__ == "__main__":
    raise SystemExit(cli.main())
