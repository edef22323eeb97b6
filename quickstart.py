"""Bootstrap FMW with nothing but Python >= 3.11 (Windows, Linux, macOS).

    python quickstart.py demo    # create .venv, install FMW, run `fmw demo` on the embedded PostgreSQL
    python quickstart.py test    # create .venv, install FMW with test extras, run the test suite

Extra arguments are passed on (`python quickstart.py test -k sync`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def venv_python() -> Path:
    scripts = "Scripts" if sys.platform == "win32" else "bin"
    exe = "python.exe" if sys.platform == "win32" else "python"
    return VENV / scripts / exe


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, cwd=ROOT, check=True)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be run by any Python
        print("FMW needs Python 3.11 or newer", file=sys.stderr)
        return 2
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    if not venv_python().exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    py = str(venv_python())
    run(py, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    extra = ".[test]" if what == "test" else "."
    run(py, "-m", "pip", "install", "--quiet", "-e", extra)
    npm = shutil.which("npm")
    if what == "test" and npm and not (ROOT / "tests" / "idp" / "node_modules").is_dir():
        # The sign-on tests' OpenID Connect provider (tests/idp) runs under Node.js.
        run(npm, "ci", "--prefix", "tests/idp", "--no-audit", "--no-fund")
    try:
        if what == "demo":
            run(py, "-m", "fmw", *rest, "demo")
        else:
            run(py, "-m", "pytest", *rest)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
