"""Windows Task Scheduler registration for the nightly backup and the weekly restore rehearsal.

Pure functions: they build the task XML and the ``schtasks`` command lines as text, so they are
tested on Linux; `fmw backup schedule` writes them into deploy/windows/tasks/ for an admin to run
(``register-tasks.cmd``, as Administrator).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import PureWindowsPath
from xml.sax.saxutils import escape

from fmw.errors import ConfigError

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SYSTEM_SID = "S-1-5-18"
_NAME_RE = re.compile(r"^[A-Za-z0-9 _.\\-]{1,200}$")


@dataclass(frozen=True)
class ScheduledTask:
    """One task: run `command` with `arguments` at `at` every day (or on `days`)."""

    name: str  # the task path, e.g. "FMW\\Backup"
    description: str
    command: str
    arguments: tuple[str, ...]
    working_dir: str
    at: time
    days: tuple[str, ...] = ()  # empty: every day
    user: str = "SYSTEM"
    time_limit_hours: int = 4

    def validate(self) -> None:
        """Raises ConfigError for a name, day or limit Task Scheduler would refuse."""
        if not _NAME_RE.match(self.name) or self.name.startswith("\\"):
            raise ConfigError(f"task name {self.name!r}: letters, digits, space, _ . - and \\")
        bad = [d for d in self.days if d not in DAYS]
        if bad:
            raise ConfigError(f"unknown day(s) {', '.join(bad)}; use {', '.join(DAYS)}")
        if not 1 <= self.time_limit_hours <= 72:
            raise ConfigError("time_limit_hours must be 1-72")


def command_line(args: Sequence[str]) -> str:
    """Arguments quoted the way Windows programs parse them (MS C runtime rules)."""
    return subprocess.list2cmdline(list(args))


def task_xml(task: ScheduledTask) -> str:
    """The Task Scheduler 1.2 XML of `task` (write it UTF-16 encoded, as schtasks expects)."""
    task.validate()
    start = f"2026-01-01T{task.at:%H:%M:%S}"
    if task.days:
        days = "".join(f"<{d} />" for d in task.days)
        schedule = (f"<ScheduleByWeek><WeeksInterval>1</WeeksInterval><DaysOfWeek>{days}"
                    "</DaysOfWeek></ScheduleByWeek>")
    else:
        schedule = "<ScheduleByDay><DaysInterval>1</DaysInterval></ScheduleByDay>"
    if task.user.upper() in ("SYSTEM", "NT AUTHORITY\\SYSTEM", SYSTEM_SID):
        principal = f"<UserId>{SYSTEM_SID}</UserId><RunLevel>HighestAvailable</RunLevel>"
    else:
        principal = (f"<UserId>{escape(task.user)}</UserId><LogonType>Password</LogonType>"
                     "<RunLevel>HighestAvailable</RunLevel>")
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>{escape(task.description)}</Description>
    <URI>\\{escape(task.name)}</URI>
  </RegistrationInfo>
  <Triggers>
    <CalendarTrigger>
      <StartBoundary>{start}</StartBoundary>
      <Enabled>true</Enabled>
      {schedule}
    </CalendarTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">{principal}</Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <ExecutionTimeLimit>PT{task.time_limit_hours}H</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT15M</Interval>
      <Count>3</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(task.command)}</Command>
      <Arguments>{escape(command_line(task.arguments))}</Arguments>
      <WorkingDirectory>{escape(task.working_dir)}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"""


def create_command(task: ScheduledTask, xml_path: str) -> list[str]:
    """``schtasks /Create`` for `task` from its XML file (/F replaces an older definition)."""
    cmd = ["schtasks", "/Create", "/TN", task.name, "/XML", xml_path, "/F"]
    if task.user.upper() not in ("SYSTEM", "NT AUTHORITY\\SYSTEM", SYSTEM_SID):
        cmd += ["/RU", task.user, "/RP", "*"]  # schtasks asks for the password
    return cmd


def default_tasks(python: str, config: str | None, working_dir: str, *,
                  backup_at: time = time(2, 30), verify_at: time = time(4, 0),
                  verify_day: str = "Sunday", user: str = "SYSTEM") -> tuple[ScheduledTask, ...]:
    """FMW\\Backup every night and FMW\\RestoreVerify once a week, both ``python -m fmw``.

    `python` should be the venv's python.exe through its stable path (C:\\FMW\\venv, which a
    deploy re-points), so the tasks follow upgrades and rollbacks without re-registering.
    """
    base = ["-m", "fmw", *(["--config", config] if config else [])]
    return (
        ScheduledTask("FMW\\Backup", "FMW: nightly backup of the ledger (pg_dump) and the "
                      "current snapshot, with retention (fmw backup)", python,
                      (*base, "backup"), working_dir, backup_at, (), user),
        ScheduledTask("FMW\\RestoreVerify", "FMW: weekly restore rehearsal of the newest backup "
                      "into a scratch database (fmw restore --verify)", python,
                      (*base, "restore", "--verify"), working_dir, verify_at, (verify_day,), user),
    )


def xml_file_name(task: ScheduledTask) -> str:
    """``FMW\\Backup`` -> ``fmw-backup.xml``."""
    return "fmw-" + PureWindowsPath(task.name).name.lower() + ".xml"


def register_script(tasks: Sequence[ScheduledTask]) -> str:
    """A .cmd that registers every task from the XML files next to it (run as Administrator)."""
    lines = ["@echo off", "rem Generated by `fmw backup schedule`: registers FMW's scheduled "
             "tasks. Run as Administrator.", "setlocal", 'cd /d "%~dp0"']
    for t in tasks:
        lines.append(command_line(create_command(t, xml_file_name(t))) + " || exit /b 1")
    lines += ["echo FMW tasks registered: " + ", ".join(t.name for t in tasks), ""]
    return "\r\n".join(lines)
