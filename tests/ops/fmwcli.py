"""`fmw` with the operations (and API) commands registered, for tests: in-process `main` and
``python -m tests.ops.fmwcli ...`` as a real subprocess.

fmw/cli.py registers `fmw.cli_deploy` and `fmw.cli_api` once they are wired in; until then this
adds them to the same parser and handles errors exactly as `fmw.cli.main` does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fmw import cli, cli_api, cli_deploy, render
from fmw.errors import FmwError
from fmw.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "backup" not in sub.choices:
        cli_deploy.register(sub)
    if "serve" not in sub.choices:
        cli_api.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = None
        if getattr(args, "needs_settings", True):
            settings = load_settings(args.config, args.data_dir)
        return int(args.func(args, settings))
    except FmwError as exc:
        render.error(str(exc))
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
