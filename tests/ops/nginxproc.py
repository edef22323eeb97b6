"""Debian's nginx run privately on a loopback port: temp prefix, pid and logs, `daemon off`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ops.nginx import main_conf

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    work: Path
    main: Path

    @property
    def error_log(self) -> str:
        p = self.work / "error.log"
        return p.read_text(errors="replace") if p.is_file() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_nginx(include: Path, work: Path, port: int) -> Nginx:
    """Run nginx with `include` (the rendered fmw.conf) and wait until `port` accepts."""
    assert NGINX is not None
    work.mkdir(parents=True, exist_ok=True)
    main = work / "nginx.conf"
    # As root, workers would switch to an unprivileged user that cannot enter pytest's folders.
    user = "root" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    main.write_text(main_conf(include, work, user=user), encoding="utf-8")
    proc = subprocess.Popen([NGINX, "-p", str(work), "-e", str(work / "error.log"), "-c", str(main)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    n = Nginx(proc, work, main)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return n
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                n.stop()
                raise RuntimeError(f"nginx did not start: {err}\n{n.error_log}") from None
            time.sleep(0.1)
