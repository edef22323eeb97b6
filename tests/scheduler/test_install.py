"""Service definitions are pure functions: the Windows plans (native sc.exe and WinSW), the
WinSW XML and the systemd units, asserted on Linux; deploy/ holds their documented output, and
`fmw service … --print` shows the plan a real `fmw` would carry out."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scheduler import install

REPO = Path(__file__).resolve().parents[2]
PY = r"C:\Program Files\fmw\.venv\Scripts\python.exe"
WIN = install.service_specs(PY, r"C:\fmw data", r"C:\fmw data\fmw.toml",
                            r"C:\fmw data\logs", stop_grace_s=20, nginx=True)
RECOVERY = [("sc.exe", "failure", "fmw-api", "reset=", "86400", "actions=",
             "restart/5000/restart/30000/restart/60000"), ("sc.exe", "failureflag", "fmw-api", "1")]


def crt_split(line: str) -> list[str]:
    """A command line split as the Microsoft C runtime (and so python.exe and sc.exe) splits
    it: the program name ends at its closing quote; then 2n backslashes before a quote are n
    backslashes and a quote toggles quoting, 2n+1 are n and a literal quote."""
    args: list[str] = []
    i = 0
    if line.startswith('"'):
        end = line.index('"', 1)
        args.append(line[1:end])
        i = end + 1
    else:
        end = len(line.split(" ", 1)[0])
        args.append(line[:end])
        i = end
    cur: list[str] | None = None
    quoted = False
    while i < len(line):
        c = line[i]
        if c == " " and not quoted:
            if cur is not None:
                args.append("".join(cur))
                cur = None
            i += 1
            continue
        cur = cur if cur is not None else []
        if c == "\\":
            n = len(line) - i - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                i += n + (n % 2)
            else:
                cur.append("\\" * n)
                i += n
            continue
        if c == '"':
            quoted = not quoted
        else:
            cur.append(c)
        i += 1
    if cur is not None:
        args.append("".join(cur))
    return args


# -- the native backend --------------------------------------------------------------------------
def test_native_install_registers_fmw_as_the_service_program() -> None:
    steps = install.windows_plan("install", WIN[:1], r"C:\fmw data\service")
    api = WIN[0]
    assert [(s.kind, s.argv) for s in steps] == [
        ("run", ("sc.exe", "create", "fmw-api", "binPath=", install.bin_path(api),
                 "start=", "delayed-auto", "DisplayName=", "FMW API and scheduler",
                 "obj=", r"NT AUTHORITY\LocalService")),
        ("run", ("sc.exe", "description", "fmw-api",
                 "FMW: the HTTP API (waitress), scheduled syncs and SLA checks")),
        *[("run", c) for c in RECOVERY],
        ("preshutdown", ()),
    ]
    assert steps[-1].service == "fmw-api" and steps[-1].seconds == 80  # grace 20 + 60
    assert install.bin_path(api) == (
        rf'"{PY}" -X utf8 -m fmw --config "C:\fmw data\fmw.toml" service run '
        r'--as-service fmw-api --log-dir "C:\fmw data\logs"')


@pytest.mark.parametrize(("python", "config", "log_dir"), [
    (r"C:\Program Files\Python312\python.exe", r"C:\fmw data\fmw.toml", r"C:\fmw data\logs"),
    (r"D:\서비스\파이썬\python.exe", r"D:\설정 파일\fmw.toml", r"D:\로그 폴더\\"),
    (r"C:\py\python.exe", r'C:\odd "quoted"\fmw.toml', "C:\\tab\there"),
    (r"\\server\share\py 3\python.exe", r"\\server\share\fmw.toml", r"C:\logs"),
])
def test_the_bin_path_reads_back_as_the_same_arguments(python: str, config: str,
                                                       log_dir: str) -> None:
    """What python.exe will see in sys.argv is exactly the command of the plan, whatever the
    spaces, non-ASCII letters, quotes or trailing backslashes in the paths."""
    for spec in install.service_specs(python, "w", config, log_dir, nginx=True):
        line = install.bin_path(spec)
        assert line.startswith(f'"{python}" ')  # never an unquoted path with spaces
        assert crt_split(line) == list(install.native_command(spec))
        # ... and sc.exe gets that line as one argument of the command subprocess builds
        argv = install.sc_create(spec)
        assert crt_split(subprocess.list2cmdline(argv))[1:] == argv[1:]


def test_without_a_config_file_the_services_get_the_data_dir() -> None:
    spec = install.service_specs("py", "w", None, "l", data_dir=r"C:\fmw\.fmw")[0]
    assert spec.arguments == ("-m", "fmw", "--data-dir", r"C:\fmw\.fmw", "service", "run")


def test_a_user_account_is_set_with_its_password_by_sc_config() -> None:
    spec = install.service_specs("py", "w", None, "l", account=r"DOMAIN\svc-fmw")[0]
    steps = install.windows_plan("install", [spec], "C:\\s")
    assert "obj=" not in steps[0].argv  # created as LocalSystem, then changed with the password
    assert steps[-1].argv == ("sc.exe", "config", "fmw-api", "obj=", r"DOMAIN\svc-fmw",
                              "password=", install.PASSWORD)
    assert "serviceaccount" not in install.winsw_xml(spec)  # never a password in a file


@pytest.mark.parametrize("account", install.BUILTIN_ACCOUNTS)
def test_a_builtin_account_is_set_at_create(account: str) -> None:
    spec = install.service_specs("py", "w", None, "l", account=account)[0]
    steps = install.windows_plan("install", [spec], "C:\\s")
    assert steps[0].argv[-2:] == ("obj=", account)
    assert not any("password=" in s.argv for s in steps)


@pytest.mark.parametrize("backend", ["native", "winsw"])
@pytest.mark.parametrize(("action", "expected"), [
    ("start", [("run", "sc.exe start fmw-api"), ("wait", "fmw-api RUNNING 120"),
               ("run", "sc.exe start fmw-ui"), ("wait", "fmw-ui RUNNING 120"),
               ("run", "sc.exe start fmw-nginx"), ("wait", "fmw-nginx RUNNING 120")]),
    ("stop", [("run", "sc.exe stop fmw-nginx"), ("wait", "fmw-nginx STOPPED 40"),
              ("run", "sc.exe stop fmw-ui"), ("wait", "fmw-ui STOPPED 40"),
              ("run", "sc.exe stop fmw-api"), ("wait", "fmw-api STOPPED 90")]),
    ("status", [("run", "sc.exe query fmw-api"), ("run", "sc.exe query fmw-ui"),
                ("run", "sc.exe query fmw-nginx")]),
])
def test_start_stop_status_go_through_sc_for_either_backend(backend: install.Backend,
                                                            action: install.Action,
                                                            expected: list[tuple[str, str]]
                                                            ) -> None:
    steps = install.windows_plan(action, WIN, "C:\\s", backend=backend)
    assert [(s.kind, " ".join(s.argv) if s.kind == "run" else
             f"{s.service} {s.state} {s.seconds:g}") for s in steps] == expected
    # A missing service: an error only when fmw-api cannot be started; fmw-ui and fmw-nginx may
    # have been left out at install, and a service that does not exist is stopped already.
    ok = {"start": [(0, 1056), (0, 1056, 1060), (0, 1056, 1060)],
          "stop": [(0, 1062, 1060)] * 3, "status": [(0, 1060)] * 3}[action]
    assert [s.ok_codes for s in steps if s.kind == "run"] == ok
    waits = [s.ok_codes for s in steps if s.kind == "wait"]
    assert waits == {"start": [(0,), (0, 1060), (0, 1060)], "stop": [(0, 1060)] * 3,
                     "status": []}[action]


def test_remove_stops_waits_and_deletes_in_reverse_order() -> None:
    native = install.windows_plan("remove", WIN[:2], r"C:\s")
    assert [(s.kind, s.argv or s.service) for s in native] == [
        ("run", ("sc.exe", "stop", "fmw-ui")), ("wait", "fmw-ui"),
        ("run", ("sc.exe", "delete", "fmw-ui")),
        ("run", ("sc.exe", "stop", "fmw-api")), ("wait", "fmw-api"),
        ("run", ("sc.exe", "delete", "fmw-api"))]
    assert native[0].ok_codes == (0, 1062, 1060) and native[2].ok_codes == (0, 1060)
    winsw = install.windows_plan("remove", WIN[:1], r"C:\s", backend="winsw")
    assert [(s.kind, s.path) for s in winsw if s.kind == "delete"] == [
        ("delete", r"C:\s\fmw-api.exe"), ("delete", r"C:\s\fmw-api.xml")]


def test_sc_query_output_is_parsed_for_the_state() -> None:
    text = ("SERVICE_NAME: fmw-api \r\n        TYPE               : 10  WIN32_OWN_PROCESS  \r\n"
            "        STATE              : 4  RUNNING \r\n"
            "                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_PRESHUTDOWN)\r\n"
            "        WIN32_EXIT_CODE    : 0  (0x0)\r\n")
    assert install.parse_sc_query(text) == "RUNNING"
    assert install.parse_sc_query("ZUSTAND            : 1  STOPPED") == "STOPPED"  # German
    assert install.parse_sc_query("[SC] EnumQueryServicesStatus:OpenService FAILED 1060:") \
        is None


def test_the_backend_left_by_an_install_is_recognised(tmp_path: Path) -> None:
    assert install.installed_backend(tmp_path, WIN) == "native"
    (tmp_path / "fmw-ui.xml").write_text("<service/>", encoding="utf-8")
    assert install.installed_backend(tmp_path, WIN) == "winsw"


def test_stop_budgets() -> None:
    assert [s.stop_timeout_s for s in WIN] == [80, 30, 30]
    assert install.stop_timeout_s("api", 300) == 360


# -- the WinSW backend ---------------------------------------------------------------------------
def test_winsw_xml_has_automatic_start_recovery_logs_and_account() -> None:
    root = ET.fromstring(install.winsw_xml(WIN[0]))
    assert root.findtext("id") == "fmw-api"
    assert root.findtext("executable") == PY
    assert root.findtext("arguments") == r'-m fmw --config "C:\fmw data\fmw.toml" service run'
    assert root.findtext("workingdirectory") == r"C:\fmw data"
    assert root.findtext("startmode") == "Automatic"
    assert root.findtext("stoptimeout") == "80 sec"  # the sync's grace + time to cancel
    assert [(e.get("action"), e.get("delay")) for e in root.findall("onfailure")] == [
        ("restart", "5 sec"), ("restart", "30 sec"), ("restart", "60 sec")]
    assert root.findtext("logpath") == r"C:\fmw data\logs"
    log = root.find("log")
    assert log is not None and log.get("mode") == "roll-by-size"
    assert log.findtext("sizeThreshold") == "10240" and log.findtext("keepFiles") == "8"
    assert {e.get("name"): e.get("value") for e in root.findall("env")}["FMW_CONFIG"] == \
        r"C:\fmw data\fmw.toml"
    assert root.findtext("serviceaccount/username") == r"NT AUTHORITY\LocalService"
    ui = ET.fromstring(install.winsw_xml(WIN[1]))
    assert ui.findtext("id") == "fmw-ui" and ui.findtext("arguments", "").endswith("run --ui")
    nginx = ET.fromstring(install.winsw_xml(WIN[2]))
    assert nginx.findtext("arguments", "").endswith("run --nginx")


def test_xml_special_characters_are_escaped() -> None:
    spec = install.service_specs(r"C:\a&b\python.exe", "C:\\x", 'C:\\x\\"q".toml', "C:\\x")[0]
    root = ET.fromstring(install.winsw_xml(spec))
    assert root.findtext("executable") == r"C:\a&b\python.exe"
    assert {e.get("name"): e.get("value") for e in root.findall("env")}["FMW_CONFIG"] == \
        'C:\\x\\"q".toml'


def test_sc_recovery_commands() -> None:
    assert [tuple(c) for c in install.sc_recovery_commands("fmw-api")] == RECOVERY


def test_winsw_install_plan() -> None:
    steps = install.windows_plan("install", WIN[:1], r"C:\fmw data\service", r"D:\WinSW-x64.exe",
                                 backend="winsw")
    assert [(s.kind, s.argv, s.path) for s in steps] == [
        ("copy", (), r"C:\fmw data\service\fmw-api.exe"),
        ("write", (), r"C:\fmw data\service\fmw-api.xml"),
        ("run", (r"C:\fmw data\service\fmw-api.exe", "install"), None),
        *[("run", c, None) for c in RECOVERY],
    ]
    assert steps[0].source == r"D:\WinSW-x64.exe"
    with pytest.raises(ValueError, match="WinSW executable"):
        install.windows_plan("install", WIN, "C:\\s", backend="winsw")


def test_executing_a_plan_refuses_outside_windows() -> None:
    if sys.platform == "win32":
        pytest.skip("on Windows it would really install")
    with pytest.raises(RuntimeError, match="only be managed on Windows"):
        install.execute_windows(install.windows_plan("status", WIN, "C:\\s"))


# -- Linux ---------------------------------------------------------------------------------------
def test_systemd_units_restart_always_and_stop_with_sigterm() -> None:
    api, ui = install.example_specs("linux")
    unit = install.systemd_unit(api)
    assert "Restart=always" in unit and "KillSignal=SIGTERM" in unit
    assert "ExecStart=/opt/fmw/.venv/bin/python -m fmw --config /opt/fmw/fmw.toml service run" \
        in unit
    assert "WorkingDirectory=/opt/fmw" in unit and "User=fmw" in unit
    assert "TimeoutStopSec=80" in unit
    assert install.systemd_unit(ui).count("service run --ui") == 1


# -- the documented files ------------------------------------------------------------------------
@pytest.mark.parametrize(("folder", "platform", "suffix", "render"), [
    ("windows", "windows", ".xml", install.winsw_xml),
    ("systemd", "linux", ".service", install.systemd_unit),
])
def test_the_files_in_deploy_are_the_generators_output(folder: str, platform: str, suffix: str,
                                                       render) -> None:
    specs = install.example_specs(platform)  # type: ignore[arg-type]
    for spec in specs:
        path = REPO / "deploy" / folder / f"{spec.id}{suffix}"
        text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
        assert text == render(spec), f"regenerate {path}"
    assert sorted(p.stem for p in (REPO / "deploy" / folder).glob(f"*{suffix}")) == \
        sorted(s.id for s in specs)


def test_services_md_shows_the_native_plan_of_the_example_layout() -> None:
    doc = (REPO / "deploy" / "windows" / "SERVICES.md").read_text(encoding="utf-8")
    steps = install.windows_plan("install", install.example_specs("windows"), r"C:\fmw\service")
    for st in steps:
        assert st.shown() in doc, f"SERVICES.md lacks: {st.shown()}"


# -- the command line ----------------------------------------------------------------------------
def _fmw(tmp_path: Path, toml: str, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "설정 folder" / "fmw.toml"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text('data_dir = "data"\n' + toml, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8",
           "FMW_DATABASE_URL": "postgresql://x@127.0.0.1:9/x"}
    return subprocess.run([sys.executable, "-m", "fmw", "--config", str(cfg), "service", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          encoding="utf-8")


@pytest.mark.parametrize("nginx", [True, False])
def test_install_print_shows_the_native_plan(tmp_path: Path, nginx: bool) -> None:
    exe = tmp_path / "nginx 1.26" / "nginx.exe"
    exe.parent.mkdir()
    if nginx:
        exe.write_bytes(b"MZ")
    r = _fmw(tmp_path, f'nginx_exe = "{exe.as_posix()}"\n', "install", "--print",
             "--platform", "windows", "--python", PY, "--log-dir", r"D:\로그")
    assert r.returncode == 0, r.stderr
    cfg = tmp_path / "설정 folder" / "fmw.toml"
    lines = r.stdout.splitlines()
    creates = [ln for ln in lines if ln.startswith("sc.exe create")]
    assert [ln.split()[2] for ln in creates] == ["fmw-api", "fmw-ui"] + (["fmw-nginx"] * nginx)
    assert creates[0] == subprocess.list2cmdline(install.sc_create(install.service_specs(
        PY, "w", str(cfg), r"D:\로그")[0]))
    assert "sc.exe failureflag fmw-api 1" in lines
    assert any(ln.startswith("rem preshutdown timeout of fmw-api: 80 s") for ln in lines)
    assert ("--nginx --as-service fmw-nginx" in r.stdout) is nginx


def test_install_print_with_winsw_shows_the_files(tmp_path: Path) -> None:
    r = _fmw(tmp_path, "", "install", "--print", "--platform", "windows", "--no-nginx",
             "--winsw", r"D:\WinSW-x64.exe", "--service-dir", r"C:\fmw\service")
    assert r.returncode == 0, r.stderr
    assert r"copy D:\WinSW-x64.exe C:\fmw\service\fmw-api.exe" in r.stdout
    assert "<id>fmw-ui</id>" in r.stdout and r"C:\fmw\service\fmw-ui.exe install" in r.stdout
    refused = _fmw(tmp_path, "", "install", "--print", "--platform", "windows",
                   "--backend", "winsw")
    assert refused.returncode == 2 and "--backend winsw needs --winsw PATH" in refused.stderr


def test_the_other_actions_print_their_plans(tmp_path: Path) -> None:
    r = _fmw(tmp_path, "", "remove", "--print", "--platform", "windows", "--no-nginx")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "sc.exe stop fmw-ui", "rem wait until fmw-ui is STOPPED (at most 40 s)",
        "sc.exe delete fmw-ui",
        "sc.exe stop fmw-api", "rem wait until fmw-api is STOPPED (at most 90 s)",
        "sc.exe delete fmw-api"]
    if sys.platform != "win32":
        r = _fmw(tmp_path, "", "start", "--platform", "windows")
        assert r.returncode == 2 and "only be carried out on Windows" in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="Linux behaviour (on Windows it would install)")
def test_install_on_linux_writes_units_and_prints_the_commands(make_settings, tmp_path) -> None:
    s = make_settings()
    env = {**os.environ, "FMW_DATABASE_URL": s.database_url or "", "FMW_SCHEMA": s.schema,
           "PYTHONPATH": str(REPO)}
    out = tmp_path / "units"
    r = subprocess.run([sys.executable, "-m", "fmw.cli_ops", "--config", str(s.config_path),
                        "service", "install", "--service-dir", str(out), "--account", "svc"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["fmw-api.service", "fmw-ui.service"]
    assert "User=svc" in (out / "fmw-api.service").read_text()
    assert "sudo systemctl enable --now fmw-api fmw-ui" in r.stdout
