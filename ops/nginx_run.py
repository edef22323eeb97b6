"""Write, check and reload the Nginx configuration rendered by `ops.nginx`.

`regenerate` is the one call for "the allow list changed": `fmw nginx render` uses it, and the
API's ``PUT /api/dev/allow_list`` may call it with the list it just stored. The file is
replaced atomically and only when its text changes; when Nginx is reloaded, the full
configuration is tested first and the previous file is put back if Nginx refuses it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fmw import net
from fmw.settings import Settings
from ledger.access import AllowEntry
from ops.config import ops_path, ops_setting
from ops.nginx import NginxError, ProxyConfig, main_conf, render

TIMEOUT_S = 60


@dataclass(frozen=True)
class NginxUpdate:
    """What `regenerate` did."""

    path: Path
    changed: bool
    checked: bool  # `nginx -t` accepted the file (False: no nginx binary found to ask)
    reloaded: bool
    entries: int


def find_nginx(settings: Settings) -> str | None:
    """The nginx executable (`nginx_exe`, a name on PATH or a path), or None if absent."""
    exe = str(ops_setting(settings, "nginx_exe"))
    if os.sep in exe or "/" in exe:
        return exe if Path(exe).is_file() else None
    return shutil.which(exe)


def _run(cmd: Sequence[str], action: str) -> str:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NginxError(action, f"could not run {cmd[0]}: {exc}") from exc
    output = (proc.stderr + proc.stdout).strip()
    if proc.returncode != 0:
        raise NginxError(action, output or f"exit code {proc.returncode}")
    return output


def check_fragment(nginx: str, conf_text: str) -> str:
    """`nginx -t` on `conf_text` included in a private minimal nginx.conf.

    Returns:
        Nginx's report ("... syntax is ok ... test is successful").

    Raises:
        NginxError: with Nginx's own message (file, line and reason).
    """
    with tempfile.TemporaryDirectory(prefix="fmw-nginx-check-") as tmp:
        work = Path(tmp)
        include = work / "fmw.conf"
        include.write_text(conf_text, encoding="utf-8", newline="\n")
        main = work / "nginx.conf"
        main.write_text(main_conf(include, work), encoding="utf-8", newline="\n")
        return _run([nginx, "-t", "-q", "-p", str(work), "-e", str(work / "error.log"),
                     "-c", str(main)], "-t (rendered file)")


def control_args(settings: Settings) -> list[str]:
    """`-p nginx_prefix` and `-c nginx_main_conf`, when set (every nginx call of FMW uses them)."""
    args = []
    prefix = ops_path(settings, "nginx_prefix")
    if prefix is not None:
        args += ["-p", str(prefix)]
    main = ops_path(settings, "nginx_main_conf")
    if main is not None:
        args += ["-c", str(main)]
    return args


def reload(settings: Settings, nginx: str) -> None:
    """Test the installed configuration, then ``nginx -s reload`` (nginx_prefix/nginx_main_conf).

    Raises:
        NginxError: the test or the reload failed.
    """
    _run([nginx, "-t", "-q", *control_args(settings)], "-t")
    _run([nginx, *control_args(settings), "-s", "reload"], "-s reload")


def write_atomic(path: Path, text: str) -> bool:
    """Replace `path` with `text` (temp file + os.replace); False when it already holds it."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return True


def conf_path(settings: Settings) -> Path:
    """Where the rendered file goes (`nginx_conf`, default deploy/nginx/fmw.conf)."""
    path = ops_path(settings, "nginx_conf")
    assert path is not None  # it has a default
    return path


def load_entries(settings: Settings) -> list[AllowEntry]:
    """The allow list as stored in PostgreSQL."""
    from ledger.access import load_allow_list, session
    with session(settings, application_name="fmw-nginx") as conn:
        return load_allow_list(conn)


def regenerate(settings: Settings, entries: Sequence[AllowEntry] | None = None, *,
               out: Path | None = None, reload_nginx: bool | None = None,
               require_check: bool = False) -> NginxUpdate:
    """Render the allow list into the Nginx file; check it; write it if changed; reload.

    Args:
        settings: the nginx_*, api_* and ui_* settings.
        entries: the allow list; None reads it from PostgreSQL.
        out: the file to write (default `nginx_conf`).
        reload_nginx: reload a running Nginx after a change (default `nginx_reload`).
        require_check: fail when no nginx binary is found to check the file with.

    Raises:
        NginxError: Nginx refused the file (nothing written), or the reload failed (the
            previous file is restored).
        ConfigError: a setting is not usable in the file.
    """
    cfg = ProxyConfig.from_settings(settings)
    items = list(entries) if entries is not None else load_entries(settings)
    text = render(items, cfg, schema=settings.schema)
    nginx = find_nginx(settings)
    if nginx is None and require_check:
        raise NginxError("-t", f"{ops_setting(settings, 'nginx_exe')} not found; set nginx_exe")
    if nginx is not None:
        check_fragment(nginx, text)
    target = out or conf_path(settings)
    try:
        previous: str | None = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        previous = None
    changed = write_atomic(target, text)
    want_reload = bool(ops_setting(settings, "nginx_reload")) if reload_nginx is None else reload_nginx
    reloaded = False
    if changed and want_reload:
        if nginx is None:
            raise NginxError("-s reload", f"{ops_setting(settings, 'nginx_exe')} not found")
        try:
            reload(settings, nginx)
        except NginxError:
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                write_atomic(target, previous)
            raise
        reloaded = True
    return NginxUpdate(target, changed, nginx is not None, reloaded, len(items))


def api_target_warnings(settings: Settings) -> list[str]:
    """Why the rendered Nginx may point at no API: an FMW API of this data folder listening
    elsewhere than `api_host:api_port` (started with --port), or nothing listening there."""
    host = str(ops_setting(settings, "api_host") or "127.0.0.1")
    port = int(ops_setting(settings, "api_port") or 8000)
    out = [f"an FMW API (pid {pid}) listens on {h}:{p}, but Nginx is rendered for "
           f"{host}:{port} (api_port): set api_port = {p} in the config, or run the API on "
           f"{port}" for h, p, pid in net.listening(settings.data_dir) if p != port]
    if not net.accepts(host, port):
        out.append(f"nothing listens on {host}:{port} (api_host:api_port) yet: Nginx answers "
                   "502 for the API until it does")
    return out
