"""FMW as a native Windows service: the service-control protocol of advapi32, over ctypes.

`python -m fmw … service run --as-service NAME` (with `--ui` or `--nginx` for the other hosts)
is the command line that `sc.exe create` registers (`scheduler.install`). The service control
manager (SCM) waits only 30 s (ServicesPipeTimeout) for a new service process to connect, so
`fmw/__main__.py` hands such a command line to `serve_command`, which connects first
(StartServiceCtrlDispatcherW) and imports the rest of FMW afterwards. The SCM then runs the
service main on a thread of its own, which:

- registers the control handler (RegisterServiceCtrlHandlerExW) and reports START_PENDING;
- runs the command line in a thread: `fmw service run` parses it, loads the settings and
  calls `dispatch`, which, already connected, runs the host (`scheduler.host.api_hosted`,
  `ui_hosted`, `ops.nginx_host.nginx_hosted`) on the service's stop event; RUNNING is reported
  once the host serves;
- on STOP or PRESHUTDOWN (SHUTDOWN too, should it come) sets the host's stop event, the same
  event SIGTERM sets in a console, so a running sync gets `service_stop_grace_s` and is then
  cancelled; reports STOP_PENDING with a wait hint of the whole stop budget (grace + margin)
  and advances the checkpoint every second while the host finishes;
- reports STOPPED with exit code 0 after a requested stop, or ERROR_SERVICE_SPECIFIC_ERROR with
  the host's exit code when the host failed or ended by itself, so that the recovery actions
  (`sc failure`, failure flag set) restart it.

Only the ctypes part at the end touches Windows (`_dispatch_win32`, `set_preshutdown_timeout`).
`StatusMachine` (what to report) and `ServiceRun` (a host run against any `report` callable) are
plain Python: the tests drive them on Linux, with the real API host.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from fmw.errors import FmwError
from fmw.logs import log_to_file

log = logging.getLogger(__name__)

SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_STOPPED, SERVICE_START_PENDING, SERVICE_STOP_PENDING, SERVICE_RUNNING = 1, 2, 3, 4
STATE_NAMES = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING",
               5: "CONTINUE_PENDING", 6: "PAUSE_PENDING", 7: "PAUSED"}
SERVICE_CONTROL_STOP = 0x1
SERVICE_CONTROL_INTERROGATE = 0x4
SERVICE_CONTROL_SHUTDOWN = 0x5
SERVICE_CONTROL_PRESHUTDOWN = 0xF
SERVICE_ACCEPT_STOP = 0x1
SERVICE_ACCEPT_PRESHUTDOWN = 0x100
NO_ERROR = 0
ERROR_CALL_NOT_IMPLEMENTED = 120
ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063
ERROR_SERVICE_SPECIFIC_ERROR = 1066

STOP_CONTROLS = {SERVICE_CONTROL_STOP: "stop", SERVICE_CONTROL_SHUTDOWN: "shutdown",
                 SERVICE_CONTROL_PRESHUTDOWN: "preshutdown"}
#: Accepted while running. PRESHUTDOWN rather than SHUTDOWN: it comes first, and Windows waits
#: for it up to the service's preshutdown timeout (set at install), not a fixed few seconds.
RUNNING_CONTROLS = SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_PRESHUTDOWN

#: A host: runs until `stop` is set (or it fails), calls `ready()` once it serves; exit code.
Hosted = Callable[[threading.Event, Callable[[], None]], int]
#: The stop budget until the command line has said which host it runs.
DEFAULT_STOP_HINT_S = 60.0


@dataclass(frozen=True)
class Status:
    """The SERVICE_STATUS fields FMW sets (the type is always SERVICE_WIN32_OWN_PROCESS)."""

    state: int
    controls: int = 0
    win32_exit_code: int = NO_ERROR
    service_exit_code: int = 0
    checkpoint: int = 0
    wait_hint_ms: int = 0

    @property
    def name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))


Report = Callable[[Status], None]


class StatusMachine:
    """What a service reports, decided as data: START_PENDING -> RUNNING -> STOP_PENDING ->
    STOPPED; while pending, every `tick` advances the checkpoint. Not locked: `ServiceRun`
    serialises the calls."""

    def __init__(self, *, start_hint_s: float, stop_hint_s: float) -> None:
        self.start_hint_ms = int(start_hint_s * 1000)
        self.stop_hint_ms = int(stop_hint_s * 1000)
        self.status = Status(SERVICE_STOPPED)
        self.stop_reason: str | None = None

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def starting(self) -> Status:
        self.status = Status(SERVICE_START_PENDING, checkpoint=1, wait_hint_ms=self.start_hint_ms)
        return self.status

    def ready(self) -> Status | None:
        """The host serves: RUNNING (None when a stop came first)."""
        if self.status.state != SERVICE_START_PENDING or self.stopping:
            return None
        self.status = Status(SERVICE_RUNNING, controls=RUNNING_CONTROLS)
        return self.status

    def control(self, code: int) -> tuple[int, Status | None]:
        """A control from the SCM: (what the handler returns, the status to report or None)."""
        if code in STOP_CONTROLS:
            if self.stopping or self.status.state == SERVICE_STOPPED:
                return NO_ERROR, None
            self.stop_reason = STOP_CONTROLS[code]
            self.status = Status(SERVICE_STOP_PENDING, checkpoint=1,
                                 wait_hint_ms=self.stop_hint_ms)
            return NO_ERROR, self.status
        if code == SERVICE_CONTROL_INTERROGATE:
            return NO_ERROR, None
        return ERROR_CALL_NOT_IMPLEMENTED, None

    def tick(self) -> Status | None:
        """Progress while pending: the same state with the next checkpoint."""
        if self.status.state not in (SERVICE_START_PENDING, SERVICE_STOP_PENDING):
            return None
        self.status = replace(self.status, checkpoint=self.status.checkpoint + 1)
        return self.status

    def stopped(self, host_code: int | None) -> Status:
        """The final status. After a requested stop the exit code is 0 whatever the host
        returned (the recovery actions must not undo an admin's stop); otherwise the host
        failed or ended by itself: ERROR_SERVICE_SPECIFIC_ERROR with its code (at least 1), so
        that the recovery actions fire. `host_code` None: the host never returned."""
        if self.stopping:
            self.status = Status(SERVICE_STOPPED)
        else:
            self.status = Status(SERVICE_STOPPED, win32_exit_code=ERROR_SERVICE_SPECIFIC_ERROR,
                                 service_exit_code=host_code or 1)
        return self.status


class ServiceRun:
    """One start of a service: `hosted` in a thread, the SCM kept informed through `report`.

    `handle` is the control handler (called on the dispatcher's thread; it only sets the
    host's stop event and returns); `run` is the body of the service main.
    """

    def __init__(self, name: str, hosted: Hosted, *, stop_hint_s: float,
                 start_hint_s: float = 60.0, tick_s: float = 1.0) -> None:
        self.name = name
        self.hosted = hosted
        self.stop_hint_s = stop_hint_s
        self.tick_s = tick_s
        self.logging_to_file = False
        self.stop_event = threading.Event()
        self.machine = StatusMachine(start_hint_s=start_hint_s, stop_hint_s=stop_hint_s)
        self.host_code: int | None = None
        self._lock = threading.Lock()
        self._report: Report | None = None

    def _send(self, status: Status | None) -> None:
        """Report `status` (call with the lock held, so checkpoints go out in order)."""
        if status is None or self._report is None:
            return
        try:
            self._report(status)
        except Exception:
            log.exception("%s: could not report %s to the service manager", self.name,
                          status.name)

    def handle(self, control: int) -> int:
        """The HandlerEx body: returns NO_ERROR or ERROR_CALL_NOT_IMPLEMENTED at once."""
        with self._lock:
            result, status = self.machine.control(control)
            self._send(status)
            stopping = self.machine.stopping
        if status is not None:
            log.info("%s: %s requested, stopping (wait hint %g s)", self.name,
                     self.machine.stop_reason, self.stop_hint_s)
        if stopping:
            self.stop_event.set()
        return result

    def ready(self) -> None:
        """The host serves: report RUNNING (unless a stop came first)."""
        with self._lock:
            status = self.machine.ready()
            self._send(status)
        if status is not None:
            log.info("%s: running", self.name)

    def set_stop_hint(self, seconds: float) -> None:
        """The stop budget of the host the command line chose (before it runs)."""
        with self._lock:
            self.stop_hint_s = seconds
            self.machine.stop_hint_ms = int(seconds * 1000)

    def _host(self) -> None:
        try:
            code = int(self.hosted(self.stop_event, self.ready))
        except FmwError as exc:
            log.error("%s failed: %s", self.name, exc)
            code = exc.exit_code
        except BaseException:
            log.exception("%s failed", self.name)
            code = 1
        if not self.stop_event.is_set():
            log.error("%s ended by itself with exit code %s", self.name, code)
        self.host_code = code

    def run(self, report: Report) -> Status:
        """Start the host, report until it has ended (or overrun the stop's wait hint).

        Returns:
            The STOPPED status that was reported last.
        """
        with self._lock:
            self._report = report
            self._send(self.machine.starting())
        thread = threading.Thread(target=self._host, name=f"{self.name}-host", daemon=True)
        thread.start()
        deadline: float | None = None
        while True:
            thread.join(self.tick_s)
            if not thread.is_alive():
                break
            with self._lock:
                self._send(self.machine.tick())
                stopping = self.machine.stopping
            if stopping and deadline is None:
                deadline = time.monotonic() + self.stop_hint_s
            if deadline is not None and time.monotonic() > deadline:
                log.error("%s did not stop within %g s; reporting it stopped anyway",
                          self.name, self.stop_hint_s)
                break
        with self._lock:
            final = self.machine.stopped(None if thread.is_alive() else self.host_code)
            # Logged first: once STOPPED is reported the SCM may end the process at any time.
            log.info("%s: stopped (win32 exit code %d, service exit code %d)", self.name,
                     final.win32_exit_code, final.service_exit_code)
            self._send(final)
        return final


_current: ServiceRun | None = None  # the run `serve_command` connected, if any


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def serve_command(argv: list[str]) -> int:
    """`python -m fmw … service run --as-service NAME …` (Windows): connect to the SCM at
    once, then run FMW's command line (`fmw.cli.main(argv)`) as the service's host, so that
    the slow imports happen while START_PENDING is reported rather than before the connect.

    Returns:
        The process exit code (1 when the process was not started by the SCM).
    """
    global _current
    name = _option(argv, "--as-service") or "fmw"

    def command(stop: threading.Event, ready: Callable[[], None]) -> int:
        from fmw.cli import main
        return main(argv)

    run = ServiceRun(name, command, stop_hint_s=DEFAULT_STOP_HINT_S)
    log_dir = _option(argv, "--log-dir")
    if log_dir and sys.platform == "win32":
        log_to_file(Path(log_dir) / f"{name}.log")
        run.logging_to_file = True
    _current = run
    try:
        return _serve(run)
    except FmwError as exc:  # started from a console: say so as the CLI would, no traceback
        log.error("%s", exc)
        if sys.stderr is not None:
            sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    finally:
        _current = None


def dispatch(name: str, hosted: Hosted, *, stop_hint_s: float,
             log_file: Path | None = None) -> int:
    """Run `hosted` as the Windows service `name` until the SCM stops it. Inside
    `serve_command` (already connected) it runs the host on the service's stop event;
    otherwise it connects itself, the calling (main) thread then waiting in
    StartServiceCtrlDispatcherW.

    Args:
        name: the service name it was registered under (fmw-api, fmw-ui, fmw-nginx).
        hosted: the host to run.
        stop_hint_s: the whole stop budget (the wait hint of STOP_PENDING).
        log_file: where logging goes (a service has no console).

    Returns:
        The exit code (0 after a requested stop).

    Raises:
        FmwError: not on Windows, or the process was not started by the SCM.
    """
    if sys.platform != "win32":
        raise FmwError("--as-service is for the Windows service control manager, which starts "
                       "it (see `fmw service install`); in a console or under systemd run "
                       "`fmw service run` without it")
    current = _current
    if current is not None and current.name == name:
        if log_file is not None and not current.logging_to_file:
            log_to_file(log_file)
            current.logging_to_file = True
        current.set_stop_hint(stop_hint_s)
        return hosted(current.stop_event, current.ready)
    if log_file is not None:
        log_to_file(log_file)
    return _serve(ServiceRun(name, hosted, stop_hint_s=stop_hint_s))


def _serve(run: ServiceRun) -> int:
    """Connect `run` to the SCM, wait until it has stopped; its exit code."""
    try:
        final = _dispatch_win32(run.name, run)
    except FmwError:
        # Not a service after all (started in a console): the error is for the console too.
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        raise
    code = 0 if final.win32_exit_code == NO_ERROR else (final.service_exit_code or 1)
    stuck = [t.name for t in threading.enumerate()
             if t.is_alive() and not t.daemon and t is not threading.main_thread()]
    if stuck:
        # A sync that ignored its cancellation keeps a worker thread alive; PostgreSQL rolls
        # its transaction back as soon as this process's connections close.
        log.warning("%s: threads still running after the stop (%s); exiting now", run.name,
                    ", ".join(stuck))
        logging.shutdown()
        os._exit(code)
    return code


if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _SERVICE_MAIN = ctypes.WINFUNCTYPE(None, wintypes.DWORD, ctypes.POINTER(wintypes.LPWSTR))
    _HANDLER_EX = ctypes.WINFUNCTYPE(wintypes.DWORD, wintypes.DWORD, wintypes.DWORD,
                                     wintypes.LPVOID, wintypes.LPVOID)

    class _SERVICE_TABLE_ENTRYW(ctypes.Structure):
        _fields_ = [("lpServiceName", wintypes.LPWSTR), ("lpServiceProc", _SERVICE_MAIN)]

    class _SERVICE_STATUS(ctypes.Structure):
        _fields_ = [(f, wintypes.DWORD) for f in (
            "dwServiceType", "dwCurrentState", "dwControlsAccepted", "dwWin32ExitCode",
            "dwServiceSpecificExitCode", "dwCheckPoint", "dwWaitHint")]

    def _advapi32() -> ctypes.WinDLL:
        dll = ctypes.WinDLL("advapi32", use_last_error=True)
        dll.StartServiceCtrlDispatcherW.argtypes = [ctypes.POINTER(_SERVICE_TABLE_ENTRYW)]
        dll.StartServiceCtrlDispatcherW.restype = wintypes.BOOL
        dll.RegisterServiceCtrlHandlerExW.argtypes = [wintypes.LPCWSTR, _HANDLER_EX,
                                                      wintypes.LPVOID]
        dll.RegisterServiceCtrlHandlerExW.restype = wintypes.HANDLE
        dll.SetServiceStatus.argtypes = [wintypes.HANDLE, ctypes.POINTER(_SERVICE_STATUS)]
        dll.SetServiceStatus.restype = wintypes.BOOL
        return dll

    def _dispatch_win32(name: str, run: ServiceRun) -> Status:
        api = _advapi32()
        final: list[Status] = []

        def handler(control: int, event_type: int, event_data: int | None,
                    context: int | None) -> int:
            try:
                return run.handle(int(control))
            except Exception:  # an exception must not cross back into advapi32
                log.exception("%s: the control handler failed", name)
                return NO_ERROR

        handler_ref = _HANDLER_EX(handler)  # referenced until the dispatcher returns

        def service_main(argc: int, argv: object) -> None:
            try:
                handle = api.RegisterServiceCtrlHandlerExW(name, handler_ref, None)
                if not handle:
                    raise ctypes.WinError(ctypes.get_last_error())

                def report(st: Status) -> None:
                    s = _SERVICE_STATUS(SERVICE_WIN32_OWN_PROCESS, st.state, st.controls,
                                        st.win32_exit_code, st.service_exit_code,
                                        st.checkpoint, st.wait_hint_ms)
                    if not api.SetServiceStatus(handle, ctypes.byref(s)):
                        raise ctypes.WinError(ctypes.get_last_error())

                final.append(run.run(report))
            except Exception:
                log.exception("%s: the service main failed", name)

        main_ref = _SERVICE_MAIN(service_main)
        table = (_SERVICE_TABLE_ENTRYW * 2)(_SERVICE_TABLE_ENTRYW(name, main_ref),
                                            _SERVICE_TABLE_ENTRYW(None, _SERVICE_MAIN()))
        if not api.StartServiceCtrlDispatcherW(table):
            err = ctypes.get_last_error()
            if err == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT:
                raise FmwError(f"`--as-service {name}` must be started by the Windows service "
                               f"manager (`fmw service start`, `sc start {name}`); in a "
                               "console run `fmw service run` without it")
            raise FmwError(f"StartServiceCtrlDispatcherW failed: {ctypes.WinError(err)}")
        if not final:
            return Status(SERVICE_STOPPED, win32_exit_code=ERROR_SERVICE_SPECIFIC_ERROR,
                          service_exit_code=1)
        return final[0]

    def set_preshutdown_timeout(name: str, timeout_ms: int) -> None:
        """How long Windows waits for the service at shutdown (ChangeServiceConfig2W; sc.exe
        has no command for it). The default is 10 s since Windows 10 1703 / Server 2019.

        Raises:
            OSError: the service cannot be opened or changed.
        """
        dll = ctypes.WinDLL("advapi32", use_last_error=True)
        dll.OpenSCManagerW.argtypes = [wintypes.LPCWSTR, wintypes.LPCWSTR, wintypes.DWORD]
        dll.OpenSCManagerW.restype = wintypes.HANDLE
        dll.OpenServiceW.argtypes = [wintypes.HANDLE, wintypes.LPCWSTR, wintypes.DWORD]
        dll.OpenServiceW.restype = wintypes.HANDLE
        dll.ChangeServiceConfig2W.argtypes = [wintypes.HANDLE, wintypes.DWORD, wintypes.LPVOID]
        dll.ChangeServiceConfig2W.restype = wintypes.BOOL
        dll.CloseServiceHandle.argtypes = [wintypes.HANDLE]
        scm = dll.OpenSCManagerW(None, None, 0x0001)  # SC_MANAGER_CONNECT
        if not scm:
            raise ctypes.WinError(ctypes.get_last_error())
        try:
            svc = dll.OpenServiceW(scm, name, 0x0002)  # SERVICE_CHANGE_CONFIG
            if not svc:
                raise ctypes.WinError(ctypes.get_last_error())
            try:
                info = wintypes.DWORD(timeout_ms)  # SERVICE_PRESHUTDOWN_INFO
                if not dll.ChangeServiceConfig2W(svc, 7, ctypes.byref(info)):
                    raise ctypes.WinError(ctypes.get_last_error())
            finally:
                dll.CloseServiceHandle(svc)
        finally:
            dll.CloseServiceHandle(scm)
else:
    def _dispatch_win32(name: str, run: ServiceRun) -> Status:
        raise FmwError("the Windows service dispatcher only exists on Windows")

    def set_preshutdown_timeout(name: str, timeout_ms: int) -> None:
        """Windows only (ChangeServiceConfig2W)."""
        raise OSError("service configuration only exists on Windows")
