"""Small network helpers shared by the rooms that bind servers (api, ui)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1, bracketed or not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- where the API processes of this data folder listen ---------------------------------------
# `fmw serve` notes its address in `<data_dir>/api/listening-<pid>.json` while it runs, so
# `fmw nginx render` can tell when Nginx would point at a port no API listens on.

def listening_path(data_dir: Path, pid: int | None = None) -> Path:
    return data_dir / "api" / f"listening-{os.getpid() if pid is None else pid}.json"


def note_listening(data_dir: Path, host: str, port: int) -> Path:
    """Record this process's address (replaced atomically; `forget_listening` removes it)."""
    path = listening_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}) + "\n",
                   encoding="utf-8", newline="\n")
    os.replace(tmp, path)
    return path


def forget_listening(data_dir: Path) -> None:
    listening_path(data_dir).unlink(missing_ok=True)


def listening(data_dir: Path) -> list[tuple[str, int, int]]:
    """(host, port, pid) of the API processes of this data folder that are alive."""
    import psutil
    found = []
    for p in sorted((data_dir / "api").glob("listening-*.json")):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
            host, port, pid = str(d["host"]), int(d["port"]), int(d["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if psutil.pid_exists(pid):
            found.append((host, port, pid))
    return found


def accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
