"""`fmw demo` and progress bars ask whether a person is at a terminal; NUL, files and pipes are
not one (on Windows NUL is a character device, so `isatty()` alone says yes: the demo then
started the API and the explorer under a scheduled task and never returned)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fmw.console import is_console

ROOT = Path(__file__).resolve().parents[2]


def test_the_null_device_a_file_and_a_pipe_are_not_consoles(tmp_path):
    with open(os.devnull, encoding="utf-8") as nul, \
            (tmp_path / "f.txt").open("w", encoding="utf-8") as f:
        assert not is_console(nul) and not is_console(f)
    r, w = os.pipe()
    with os.fdopen(r, encoding="utf-8") as rf, os.fdopen(w, "w", encoding="utf-8") as wf:
        assert not is_console(rf) and not is_console(wf)
    assert not is_console(None)


def test_a_child_with_nul_as_stdin_sees_no_console():
    code = "import sys; from fmw.console import is_console; print(is_console(sys.stdin))"
    out = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False"
