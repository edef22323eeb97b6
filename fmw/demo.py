"""`fmw demo`: sample sources -> schema -> reference data -> two syncs -> what happened."""

from __future__ import annotations

import sys
from pathlib import Path

from fmw import render
from fmw.console import is_console
from fmw.settings import Settings, load_settings


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_demo_config(settings: Settings, target: Path) -> Path:
    """Write the sample sources and an fmw.toml for them into `target`; return the toml path."""
    from ledger.demo import render_sources_toml, write_demo_sources

    target.mkdir(parents=True, exist_ok=True)
    sources = write_demo_sources(target)
    head = [
        "# Written by `fmw demo`: sample sources with real MCC/MNC pairs.",
        f"data_dir = {_toml_str(settings.data_dir.as_posix())}",
        f"schema = {_toml_str(settings.schema)}",
        f"timezone = {_toml_str(settings.timezone)}",
        "",
    ]
    cfg = target / "fmw.toml"
    cfg.write_text("\n".join(head) + render_sources_toml(sources), encoding="utf-8", newline="\n")
    return cfg


def run_demo(settings: Settings, demo_dir: Path | None, up: bool = True) -> int:
    """Run the whole demo; returns the exit code."""
    from ledger import runs
    from ledger.db import connect
    from ledger.demo import DEMO_ALIASES, write_demo_change_set
    from ledger.refdata import load_mcc_mnc, set_aliases
    from ledger.schema import upgrade
    from ledger.sync import plan_sync
    from scheduler.jobs import sync_and_publish

    target = (demo_dir or settings.data_dir / "demo").resolve()
    cfg = write_demo_config(settings, target)
    demo = load_settings(cfg, settings.data_dir)
    render.out(f"FMW demo in {target}")
    render.out(f"1. sample sources written; config: {cfg}")
    before, after = upgrade(demo)
    where = f"embedded PostgreSQL in {demo.pg_dir}" if demo.embedded else "the configured PostgreSQL"
    render.out(f"2. ledger schema {demo.schema!r} ready on {where} ({before or 'new'} -> {after})")
    with connect(demo, autocommit=True) as conn:
        loaded = load_mcc_mnc(conn)
        for kind, aliases in DEMO_ALIASES.items():
            set_aliases(conn, kind, aliases)
    render.out(f"3. reference data: {loaded.rows:,} MCC/MNC entries, "
               f"{sum(len(a) for a in DEMO_ALIASES.values())} name aliases")
    show = demo.progress and is_console(sys.stderr)
    ids = []
    for step, label in ((4, "day 1: first sync"), (5, "day 2: the sources changed")):
        if step == 5:
            write_demo_change_set(target, seed=8)
        render.out(f"{step}. {label}")
        with render.SyncProgress(enabled=show) as progress:
            job = sync_and_publish(demo, plan_sync(demo, trigger="demo"), progress)
        render.sync_result(job.sync)
        render.snapshot_line(job)
        ids.append(job.sync.run_id)
    with connect(demo) as conn:
        render.runs_table(runs.list_runs(conn, 5))
        run1 = runs.get_run(conn, ids[0])
        assert run1 is not None
        render.run_detail(run1, runs.run_errors(conn, ids[0], limit=20))
    render.out("")
    render.out("Try next:")
    render.out(f'  fmw --config "{cfg}" runs')
    render.out(f'  fmw --config "{cfg}" changes --run {ids[1]}')
    render.out(f'  fmw --config "{cfg}" db url      # psql / pg_dump / DBeaver')
    render.out(f'  fmw --config "{cfg}" sql "SELECT status, count(*) FROM features GROUP BY 1"')
    render.out(f'  fmw --config "{cfg}" up          # the API and the explorer')
    if up and is_console(sys.stdin):
        from fmw.cli_ui import run_up
        render.out("")
        return run_up(demo, open_note="Open the explorer in your browser; Ctrl+C stops both.")
    return 0
