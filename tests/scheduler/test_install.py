"""Service definitions are pure functions: the WinSW XML, the sc.exe recovery commands, the
Windows plan and the systemd units, asserted on Linux; deploy/ holds their documented output."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scheduler import install

REPO = Path(__file__).resolve().parents[2]
WIN = install.service_specs(r"C:\Program Files\fmw\python.exe", r"C:\fmw data",
                            r"C:\fmw data\fmw.toml", r"C:\fmw data\logs", stop_grace_s=20)


def test_winsw_xml_has_automatic_start_recovery_logs_and_account() -> None:
    root = ET.fromstring(install.winsw_xml(WIN[0]))
    assert root.findtext("id") == "fmw-api"
    assert root.findtext("executable") == r"C:\Program Files\fmw\python.exe"
    assert root.findtext("arguments") == r'-m fmw --config "C:\fmw data\fmw.toml" service run'
    assert root.findtext("workingdirectory") == r"C:\fmw data"
    assert root.findtext("startmode") == "Automatic"
    assert root.findtext("stoptimeout") == "60 sec"  # the sync's grace + time to cancel
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


def test_xml_special_characters_are_escaped() -> None:
    spec = install.service_specs(r"C:\a&b\python.exe", "C:\\x", 'C:\\x\\"q".toml', "C:\\x")[0]
    root = ET.fromstring(install.winsw_xml(spec))
    assert root.findtext("executable") == r"C:\a&b\python.exe"
    assert {e.get("name"): e.get("value") for e in root.findall("env")}["FMW_CONFIG"] == \
        'C:\\x\\"q".toml'


def test_sc_recovery_commands() -> None:
    assert install.sc_recovery_commands("fmw-api") == [
        ["sc.exe", "failure", "fmw-api", "reset=", "86400",
         "actions=", "restart/5000/restart/30000/restart/60000"],
        ["sc.exe", "failureflag", "fmw-api", "1"],
    ]


def test_windows_install_plan() -> None:
    steps = install.windows_plan("install", WIN[:1], r"C:\fmw data\service", r"D:\WinSW-x64.exe")
    assert [(s.kind, s.argv, s.path) for s in steps] == [
        ("copy", (), r"C:\fmw data\service\fmw-api.exe"),
        ("write", (), r"C:\fmw data\service\fmw-api.xml"),
        ("run", (r"C:\fmw data\service\fmw-api.exe", "install"), None),
        ("run", ("sc.exe", "failure", "fmw-api", "reset=", "86400", "actions=",
                 "restart/5000/restart/30000/restart/60000"), None),
        ("run", ("sc.exe", "failureflag", "fmw-api", "1"), None),
    ]
    assert steps[0].source == r"D:\WinSW-x64.exe"


def test_a_user_account_gets_its_password_set_by_sc_config() -> None:
    spec = install.service_specs("py", "w", None, "l", account=r".\fmw")[0]
    assert "serviceaccount" not in install.winsw_xml(spec)  # no password in a file
    last = install.windows_plan("install", [spec], "C:\\s", "w.exe")[-1]
    assert last.argv == ("sc.exe", "config", "fmw-api", "obj=", r".\fmw", "password=",
                         install.PASSWORD)


@pytest.mark.parametrize(("action", "argvs"), [
    ("start", [("fmw-api.exe", "start"), ("fmw-ui.exe", "start")]),
    ("stop", [("fmw-api.exe", "stop"), ("fmw-ui.exe", "stop")]),
    ("status", [("fmw-api.exe", "status"), ("fmw-ui.exe", "status")]),
    ("remove", [("fmw-api.exe", "stop"), ("fmw-api.exe", "uninstall"),
                ("fmw-ui.exe", "stop"), ("fmw-ui.exe", "uninstall")]),
])
def test_windows_plans_for_the_other_actions(action: install.Action,
                                             argvs: list[tuple[str, str]]) -> None:
    steps = install.windows_plan(action, WIN, "C:\\s")
    assert [(s.argv[0].removeprefix("C:\\s\\"), s.argv[1]) for s in steps] == argvs


def test_executing_a_plan_refuses_outside_windows() -> None:
    if sys.platform == "win32":
        pytest.skip("on Windows it would really install")
    with pytest.raises(RuntimeError, match="only be managed on Windows"):
        install.execute_windows(install.windows_plan("status", WIN, "C:\\s"))


def test_systemd_units_restart_always_and_stop_with_sigterm() -> None:
    api, ui = install.example_specs("linux")
    unit = install.systemd_unit(api)
    assert "Restart=always" in unit and "KillSignal=SIGTERM" in unit
    assert "ExecStart=/opt/fmw/.venv/bin/python -m fmw --config /opt/fmw/fmw.toml service run" \
        in unit
    assert "WorkingDirectory=/opt/fmw" in unit and "User=fmw" in unit
    assert "TimeoutStopSec=60" in unit
    assert install.systemd_unit(ui).count("service run --ui") == 1


@pytest.mark.parametrize(("folder", "platform", "suffix", "render"), [
    ("windows", "windows", ".xml", install.winsw_xml),
    ("systemd", "linux", ".service", install.systemd_unit),
])
def test_the_files_in_deploy_are_the_generators_output(folder: str, platform: str, suffix: str,
                                                       render) -> None:
    for spec in install.example_specs(platform):  # type: ignore[arg-type]
        path = REPO / "deploy" / folder / f"{spec.id}{suffix}"
        text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
        assert text == render(spec), f"regenerate {path}"


def test_install_on_linux_writes_units_and_prints_the_commands(make_settings, tmp_path) -> None:
    s = make_settings()
    env = {**os.environ, "FMW_DATABASE_URL": s.database_url or "", "FMW_SCHEMA": s.schema,
           "PYTHONPATH": str(REPO)}
    out = tmp_path / "units"
    r = subprocess.run([sys.executable, "-m", "fmw.cli_ops", "--config", str(s.config_path),
                        "service", "install", "--service-dir", str(out), "--account", "svc"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    if sys.platform == "win32":
        pytest.skip("Linux behaviour")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["fmw-api.service", "fmw-ui.service"]
    assert "User=svc" in (out / "fmw-api.service").read_text()
    assert "sudo systemctl enable --now fmw-api fmw-ui" in r.stdout
