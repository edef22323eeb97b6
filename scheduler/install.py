"""Service definitions: Windows services (native or WinSW) and systemd units for Linux.

Everything here but `execute_windows` is pure (tested on Linux): files and command lines as
data, a plan of `Step`s that `fmw service <action> --print` shows and the tests assert on.

The Windows services: `fmw-api` (API + scheduler), `fmw-ui` (the explorer) and, when an
nginx.exe is configured, `fmw-nginx` (nginx.exe run in the foreground by FMW,
`ops.nginx_host`). Two backends register them:

- native (the default): FMW is the service program itself (`scheduler.winservice`).
  `sc.exe create` registers ``"python.exe" -X utf8 -m fmw --config … service run
  --as-service NAME --log-dir …``; nothing to download, sc.exe is part of Windows. The log
  is `<log_dir>/NAME.log`, written by FMW (`fmw.logs`).
- winsw: each service is a renamed copy of the WinSW executable (`fmw-api.exe`) with its XML
  beside it, in `<data_dir>/service` by default. WinSW starts `fmw service run` as a console
  child, captures its output into size-rotated logs, and on a stop sends Ctrl+C, which FMW
  handles like SIGTERM, before killing it after `stoptimeout`.

Either way: delayed automatic start; recovery restarts after 5 s, 30 s, 60 s (`sc.exe
failure`), with the failure flag set (`sc.exe failureflag`) so that a non-zero exit counts as
a failure too, not only a crash. `start`, `stop`, `status` and `remove` use sc.exe for both
backends (a WinSW service is an ordinary service to the service manager).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

ServiceRole = Literal["api", "ui", "nginx"]
Backend = Literal["native", "winsw"]
Action = Literal["install", "remove", "start", "stop", "status"]

RESTART_DELAYS_MS = (5_000, 30_000, 60_000)
RESET_FAILURES_S = 86_400
BUILTIN_ACCOUNTS = ("LocalSystem", r"NT AUTHORITY\LocalService", r"NT AUTHORITY\NetworkService")
DEFAULT_ACCOUNT = r"NT AUTHORITY\LocalService"
PASSWORD = "<password>"  # placeholder in a plan; `execute_windows` puts in the real one
#: After the sync's grace: cancelling it (up to 30 s), closing the API and the sessions.
STOP_MARGIN_S = 60
START_TIMEOUT_S = 120
# sc.exe exits with the Win32 error code; these are expected in some steps.
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
STATE_RE = re.compile(r":\s*[1-7]\s+(STOPPED|START_PENDING|STOP_PENDING|RUNNING|CONTINUE_PENDING|"
                      r"PAUSE_PENDING|PAUSED)\b")


@dataclass(frozen=True)
class ServiceSpec:
    """One service, platform-neutral."""

    id: str
    role: ServiceRole
    display_name: str
    description: str
    python: str
    arguments: tuple[str, ...]
    working_dir: str
    log_dir: str
    config_path: str | None
    account: str
    stop_timeout_s: int = 60


def stop_timeout_s(role: ServiceRole, stop_grace_s: float) -> int:
    """How long a stop may take before the service manager gives up on it: for the API, the
    sync's grace plus `STOP_MARGIN_S`; 30 s for the explorer and nginx."""
    return int(stop_grace_s) + STOP_MARGIN_S if role == "api" else 30


def service_specs(python: str, working_dir: str, config_path: str | None, log_dir: str,
                  account: str = DEFAULT_ACCOUNT, stop_grace_s: float = 20.0,
                  ui: bool = True, nginx: bool = False,
                  data_dir: str | None = None) -> list[ServiceSpec]:
    """fmw-api (API + scheduler), with `ui` fmw-ui (Streamlit), with `nginx` fmw-nginx.

    Without a config file the services get `--data-dir`: a Windows service starts in
    System32, where a relative data_dir would land.
    """
    base: tuple[str, ...] = ("-m", "fmw")
    if config_path:
        base += ("--config", config_path)
    elif data_dir:
        base += ("--data-dir", data_dir)

    def spec(id: str, role: ServiceRole, display_name: str, description: str,
             *run: str) -> ServiceSpec:
        return ServiceSpec(id=id, role=role, display_name=display_name, description=description,
                           python=python, arguments=base + ("service", "run", *run),
                           working_dir=working_dir, log_dir=log_dir, config_path=config_path,
                           account=account, stop_timeout_s=stop_timeout_s(role, stop_grace_s))

    specs = [spec("fmw-api", "api", "FMW API and scheduler",
                  "FMW: the HTTP API (waitress), scheduled syncs and SLA checks")]
    if ui:
        specs.append(spec("fmw-ui", "ui", "FMW explorer (Streamlit)",
                          "FMW: the Streamlit explorer UI", "--ui"))
    if nginx:
        specs.append(spec("fmw-nginx", "nginx", "FMW Nginx front",
                          "FMW: nginx.exe in front of the API and the explorer, run by FMW",
                          "--nginx"))
    return specs


# -- Windows: the native backend -----------------------------------------------------------------
def native_command(spec: ServiceSpec) -> tuple[str, ...]:
    """What the service manager runs for `spec` (UTF-8 mode, as WinSW's PYTHONUTF8=1)."""
    return (spec.python, "-X", "utf8", *spec.arguments, "--as-service", spec.id,
            "--log-dir", spec.log_dir)


def bin_path(spec: ServiceSpec) -> str:
    """The service's command line (CreateService's lpBinaryPathName): the executable always
    in quotes, so a path with spaces cannot be read as a shorter one; the arguments quoted
    by the C runtime's rules, which Python's own command-line parsing follows."""
    python, *rest = native_command(spec)
    return f'"{python}" ' + subprocess.list2cmdline(rest)


def sc_create(spec: ServiceSpec) -> list[str]:
    """`sc.exe create` of `spec` (a built-in account is set here, a user account later)."""
    argv = ["sc.exe", "create", spec.id, "binPath=", bin_path(spec), "start=", "delayed-auto",
            "DisplayName=", spec.display_name]
    if spec.account in BUILTIN_ACCOUNTS:
        argv += ["obj=", spec.account]
    return argv


def sc_recovery_commands(service_id: str) -> list[list[str]]:
    """Restart after 5 s / 30 s / 60 s; count non-zero exits as failures (failure flag)."""
    actions = "/".join(f"restart/{ms}" for ms in RESTART_DELAYS_MS)
    return [["sc.exe", "failure", service_id, "reset=", str(RESET_FAILURES_S),
             "actions=", actions],
            ["sc.exe", "failureflag", service_id, "1"]]


def parse_sc_query(text: str) -> str | None:
    """The state in `sc.exe query` output (RUNNING, STOPPED, …), or None when absent."""
    m = STATE_RE.search(text)
    return m.group(1) if m else None


# -- Windows: the WinSW backend ------------------------------------------------------------------
def winsw_xml(spec: ServiceSpec) -> str:
    """The WinSW configuration file of `spec` (WinSW 2.x and 3.x)."""
    def el(name: str, value: str) -> str:
        return f"  <{name}>{escape(value)}</{name}>"

    lines = ["<!-- Generated by `fmw service install` (WinSW backend); regenerate rather than "
             "edit. -->",
             "<service>", el("id", spec.id), el("name", spec.display_name),
             el("description", spec.description), el("executable", spec.python),
             el("arguments", subprocess.list2cmdline(list(spec.arguments))),
             el("workingdirectory", spec.working_dir), el("startmode", "Automatic"),
             "  <delayedAutoStart>true</delayedAutoStart>",
             el("stoptimeout", f"{spec.stop_timeout_s} sec")]
    if spec.config_path:
        lines.append(f"  <env name=\"FMW_CONFIG\" value={quoteattr(spec.config_path)}/>")
    lines += ["  <env name=\"PYTHONUNBUFFERED\" value=\"1\"/>",
              "  <env name=\"PYTHONUTF8\" value=\"1\"/>"]
    lines += [f"  <onfailure action=\"restart\" delay=\"{ms // 1000} sec\"/>"
              for ms in RESTART_DELAYS_MS]
    lines += [el("resetfailure", "1 day"), el("logpath", spec.log_dir),
              "  <log mode=\"roll-by-size\">", "    <sizeThreshold>10240</sizeThreshold>",
              "    <keepFiles>8</keepFiles>", "  </log>"]
    if spec.account in BUILTIN_ACCOUNTS:
        lines += ["  <serviceaccount>", f"    <username>{escape(spec.account)}</username>",
                  "  </serviceaccount>"]
    lines.append("</service>")
    return "\n".join(lines) + "\n"


def installed_backend(service_dir: Path, specs: list[ServiceSpec]) -> Backend:
    """"winsw" when a WinSW install left its XML files in `service_dir`, else "native"."""
    return "winsw" if any((service_dir / f"{s.id}.xml").is_file() for s in specs) else "native"


# -- Windows: plans ------------------------------------------------------------------------------
StepKind = Literal["write", "copy", "delete", "run", "wait", "preshutdown"]


@dataclass(frozen=True)
class Step:
    """One action of a Windows plan: write, copy or delete a file; run a command; wait for a
    service to reach a state; set a service's preshutdown timeout."""

    kind: StepKind
    argv: tuple[str, ...] = ()
    path: str | None = None
    content: str | None = None
    source: str | None = None
    ok_codes: tuple[int, ...] = (0,)  # run: exit codes that are fine; wait: sc query's
    service: str | None = None
    state: str | None = None
    seconds: float = 0.0

    def shown(self) -> str:
        """The step as one line for `--print` (commands in cmd.exe syntax)."""
        if self.kind == "run":
            return subprocess.list2cmdline(list(self.argv))
        if self.kind == "wait":
            return f"rem wait until {self.service} is {self.state} (at most {self.seconds:g} s)"
        if self.kind == "preshutdown":
            return (f"rem preshutdown timeout of {self.service}: {self.seconds:g} s "
                    "(ChangeServiceConfig2W, no sc.exe command for it)")
        if self.kind == "copy":
            return f"copy {self.source} {self.path}"
        return f"rem {self.kind} {self.path}"


def native_install_steps(spec: ServiceSpec) -> list[Step]:
    steps = [Step("run", tuple(sc_create(spec))),
             Step("run", ("sc.exe", "description", spec.id, spec.description))]
    steps += [Step("run", tuple(c)) for c in sc_recovery_commands(spec.id)]
    steps.append(Step("preshutdown", service=spec.id, seconds=spec.stop_timeout_s))
    if spec.account not in BUILTIN_ACCOUNTS:
        steps.append(Step("run", ("sc.exe", "config", spec.id, "obj=", spec.account,
                                  "password=", PASSWORD)))
    return steps


def winsw_install_steps(spec: ServiceSpec, service_dir: str, winsw_exe: str) -> list[Step]:
    d = PureWindowsPath(service_dir)
    exe = str(d / f"{spec.id}.exe")
    steps = [Step("copy", source=winsw_exe, path=exe),
             Step("write", path=str(d / f"{spec.id}.xml"), content=winsw_xml(spec)),
             Step("run", (exe, "install"))]
    steps += [Step("run", tuple(c)) for c in sc_recovery_commands(spec.id)]
    if spec.account not in BUILTIN_ACCOUNTS:
        steps.append(Step("run", ("sc.exe", "config", spec.id, "obj=", spec.account,
                                  "password=", PASSWORD)))
    return steps


def windows_plan(action: Action, specs: list[ServiceSpec], service_dir: str,
                 winsw_exe: str | None = None, backend: Backend = "native") -> list[Step]:
    """What `fmw service <action>` does on Windows, as data (pure).

    Services start in the order given (API first) and stop in the reverse order.

    Raises:
        ValueError: a WinSW install without the WinSW executable.
    """
    steps: list[Step] = []
    if action == "install":
        if backend == "winsw" and not winsw_exe:
            raise ValueError("install needs the path of the WinSW executable")
        for spec in specs:
            steps += (winsw_install_steps(spec, service_dir, winsw_exe or "")
                      if backend == "winsw" else native_install_steps(spec))
        return steps
    missing = (ERROR_SERVICE_DOES_NOT_EXIST,)
    if action in ("start", "status"):
        for spec in specs:
            # fmw-ui and fmw-nginx may have been left out at install (--no-ui, no nginx then)
            optional = missing if spec.role != "api" else ()
            if action == "start":
                steps += [Step("run", ("sc.exe", "start", spec.id),
                               ok_codes=(0, ERROR_SERVICE_ALREADY_RUNNING, *optional)),
                          Step("wait", service=spec.id, state="RUNNING",
                               seconds=START_TIMEOUT_S, ok_codes=(0, *optional))]
            else:
                steps.append(Step("run", ("sc.exe", "query", spec.id), ok_codes=(0, *missing)))
        return steps
    d = PureWindowsPath(service_dir)
    for spec in reversed(specs):
        # A service that does not exist is stopped (and removed) already.
        steps += [Step("run", ("sc.exe", "stop", spec.id),
                       ok_codes=(0, ERROR_SERVICE_NOT_ACTIVE, *missing)),
                  Step("wait", service=spec.id, state="STOPPED",
                       seconds=spec.stop_timeout_s + 10, ok_codes=(0, *missing))]
        if action == "remove":
            steps.append(Step("run", ("sc.exe", "delete", spec.id),
                              ok_codes=(0, ERROR_SERVICE_DOES_NOT_EXIST)))
            if backend == "winsw":
                steps += [Step("delete", path=str(d / f"{spec.id}{ext}"))
                          for ext in (".exe", ".xml")]
    return steps


def execute_windows(steps: list[Step], password: str | None = None) -> list[str]:
    """Carry out a plan (Windows only); returns each command's output.

    Raises:
        RuntimeError: not on Windows, a command failed, or a service did not reach a state.
    """
    if sys.platform != "win32":
        raise RuntimeError("Windows services can only be managed on Windows")
    import shutil

    from scheduler.winservice import set_preshutdown_timeout
    out = []
    for st in steps:
        if st.kind == "copy":
            assert st.source and st.path
            Path(st.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(st.source, st.path)
        elif st.kind == "write":
            assert st.path and st.content is not None
            Path(st.path).parent.mkdir(parents=True, exist_ok=True)
            Path(st.path).write_text(st.content, encoding="utf-8")
        elif st.kind == "delete":
            assert st.path
            Path(st.path).unlink(missing_ok=True)
        elif st.kind == "preshutdown":
            assert st.service
            set_preshutdown_timeout(st.service, int(st.seconds * 1000))
        elif st.kind == "wait":
            assert st.service and st.state
            out.append(_wait_for(st.service, st.state, st.seconds, st.ok_codes))
        else:
            argv = [(password or "") if a == PASSWORD else a for a in st.argv]
            code, text = _run(argv)
            out.append(text)
            if code not in st.ok_codes:
                raise RuntimeError(f"`{st.shown()}` failed ({code}): {text}")
    return out


def _run(argv: list[str]) -> tuple[int, str]:
    r = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    # sc.exe writes in the console's OEM code page, also into a pipe.
    text = (r.stdout + r.stderr).decode("oem" if sys.platform == "win32" else "utf-8",
                                        "replace")
    return r.returncode, text.strip()


def _wait_for(service: str, state: str, timeout_s: float, ok_codes: tuple[int, ...]) -> str:
    """Poll `sc query` until `state`; a query error in `ok_codes` (the service does not exist)
    counts as reached."""
    deadline = time.monotonic() + timeout_s
    seen: str | None = None
    while True:
        code, text = _run(["sc.exe", "query", service])
        if code != 0 and code in ok_codes:
            return f"{service}: not installed"
        seen = parse_sc_query(text) if code == 0 else None
        if seen == state:
            return f"{service}: {state}"
        if state == "RUNNING" and seen == "STOPPED":
            raise RuntimeError(f"{service} stopped while starting: see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service} is {seen or 'unknown'}, not {state}, after "
                               f"{timeout_s:g} s")
        time.sleep(1.0)


# -- Linux ---------------------------------------------------------------------------------------
def systemd_unit(spec: ServiceSpec, user: str = "fmw") -> str:
    """A systemd unit for `spec` (`Restart=always`; SIGTERM is the graceful stop)."""
    exec_start = " ".join(_sh_quote(a) for a in (spec.python, *spec.arguments))
    env = [f"Environment=FMW_CONFIG={_sh_quote(spec.config_path)}"] if spec.config_path else []
    return "\n".join([
        "# Generated by `fmw service install` on Linux; regenerate rather than edit.",
        "[Unit]",
        f"Description={spec.display_name}",
        "After=network-online.target postgresql.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"Group={user}",
        f"WorkingDirectory={spec.working_dir}",
        *env,
        "Environment=PYTHONUNBUFFERED=1",
        f"ExecStart={exec_start}",
        # SIGTERM to the whole group: an embedded PostgreSQL started by FMW then does a "smart"
        # shutdown, which waits until FMW has cancelled its sync and closed its sessions.
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={spec.stop_timeout_s}",
        "Restart=always",
        "RestartSec=5",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def _sh_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./:=@%+," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def example_specs(platform: Literal["windows", "linux"]) -> list[ServiceSpec]:
    """The documented example layout the files in deploy/ are generated from."""
    if platform == "windows":
        return service_specs(r"C:\fmw\.venv\Scripts\python.exe", r"C:\fmw", r"C:\fmw\fmw.toml",
                             r"C:\fmw\logs", nginx=True)
    return service_specs("/opt/fmw/.venv/bin/python", "/opt/fmw", "/opt/fmw/fmw.toml",
                         "/var/log/fmw")
