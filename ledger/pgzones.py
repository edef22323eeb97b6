"""Time-zone files for the embedded PostgreSQL.

pgserver's win_amd64 wheel ships PostgreSQL without ``share/postgresql/timezone/``; without it
the server knows only GMT, so ``TimeZone=UTC`` (every FMW connection) and the configured
``timezone`` (daily counts, source time stamps) are refused. FMW fills that folder on first
start from the ``tzdata`` package (IANA's binary TZif files, the same format and data that
PostgreSQL builds into its own folder on Linux), so nothing is fetched at run time.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from importlib import resources
from pathlib import Path

from fmw.errors import DatabaseUnavailable

#: A zone every check asks for; present in both PostgreSQL's own folder and tzdata's.
PROBE_ZONE = "UTC"
_NOT_ZONES = {"__init__.py", "__pycache__"}


def zone_dir(pginstall: Path) -> Path:
    """Where PostgreSQL looks for its zone files (``<sharedir>/timezone``)."""
    return pginstall / "share" / "postgresql" / "timezone"


def tzdata_zoneinfo() -> Path:
    """The ``zoneinfo`` folder of the installed ``tzdata`` package.

    Raises:
        DatabaseUnavailable: ``tzdata`` is not installed (it is a dependency of FMW).
    """
    try:
        root = resources.files("tzdata") / "zoneinfo"
    except ModuleNotFoundError as exc:
        raise DatabaseUnavailable("the embedded PostgreSQL has no time-zone files and the "
                                  "'tzdata' package is not installed (pip install tzdata)") from exc
    return Path(str(root))


def _copy_zones(src: Path, dst: Path) -> int:
    """Copy the TZif files of `src` into `dst` (created), skipping Python package files."""
    n = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in _NOT_ZONES for part in rel.parts) or path.suffix in (".py", ".pyc"):
            continue
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            n += 1
    return n


def ensure_zone_files(pginstall: Path, source: Path | None = None) -> int:
    """Give the PostgreSQL install at `pginstall` its zone files if it has none.

    The files are copied into a private folder beside the target and renamed into place, so
    two processes starting at once never leave a half-filled folder (the loser's copy is
    removed). Returns the number of files copied (0 when the folder was already there).

    Raises:
        DatabaseUnavailable: the folder is missing and cannot be written (names the folder).
    """
    target = zone_dir(pginstall)
    if (target / PROBE_ZONE).is_file():
        return 0
    src = source or tzdata_zoneinfo()
    # pid + a random part: two threads of one process can read the same clock tick (Windows'
    # monotonic clock moves in ~15 ms steps) and must not share a folder
    tmp = target.with_name(f"timezone.tmp-{os.getpid()}-{secrets.token_hex(6)}")
    try:
        n = _copy_zones(src, tmp)
        if not (tmp / PROBE_ZONE).is_file():
            raise DatabaseUnavailable(f"the time-zone files in {src} have no {PROBE_ZONE} zone")
        for attempt in range(20):
            try:
                os.replace(tmp, target)  # a folder onto a missing name: atomic on both OSes
                return n
            except OSError:
                if (target / PROBE_ZONE).is_file():
                    return 0  # another process put its copy in place first
                if target.exists() and not any(target.iterdir()):
                    target.rmdir()  # an empty leftover folder: take its place
                time.sleep(0.05 * (attempt + 1))
        raise DatabaseUnavailable(f"could not put the time-zone files in place at {target}")
    except OSError as exc:
        raise DatabaseUnavailable(
            f"the embedded PostgreSQL has no time-zone files and FMW could not write them to "
            f"{target}: {exc}. Run any fmw command once as the account that installed FMW."
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
