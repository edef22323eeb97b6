"""FMW scheduler room (see ../shared/STYLE.md): APScheduler jobs, the service host, SLA checks.

- `scheduler.jobs`: what one sync trigger runs (sync, then publish a snapshot).
- `scheduler.runner`: one trigger with retries (transient failures) and 'skipped' runs.
- `scheduler.core`: the APScheduler-based `SyncScheduler` (cron/interval, catch-up, API triggers).
- `scheduler.sla`, `scheduler.alerts`: SLA evaluation, violations and webhook alerts.
- `scheduler.host`: `fmw service run` (waitress + scheduler; or the Streamlit UI).
- `scheduler.install`: Windows service plans (native sc.exe or WinSW), systemd units.
- `scheduler.winservice`: FMW as a native Windows service (advapi32 over ctypes).
- `scheduler.status`: what `fmw status` shows about the schedule and SLAs.
- `scheduler.config`: the settings this room reads, with defaults.
"""
