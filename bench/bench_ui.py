"""Explorer benchmark: the data loads behind Home and Overview on a 1M-row snapshot, and the
memory of the Streamlit process with 1 and with 20 browser sessions.

Builds the benchmark ledger the way `bench/bench_sync.py` does (generated CSV extract,
``fmw db upgrade``, ``fmw mccmnc load``, one ``fmw sync``) and publishes a snapshot, then stops
PostgreSQL (the explorer reads snapshots only). Times, over repeated runs (p50/p95), the
functions the pages call on a cache miss (`ui.reads`; a cache hit costs ~0): Home's data,
Overview's first page for a narrow and a broad filter, the facet counts, a 60k-row CSV and
XLSX export. Then starts the explorer (`ui.launch`, as `fmw ui` does) and opens sessions in
Debian's chromium, printing the Streamlit process's RSS and Home's load time in the browser.
A script that prints, not a test that asserts.

    PYTHONPATH=. python bench/bench_ui.py                     # 1,000,000 rows (~3 minutes)
    PYTHONPATH=. python bench/bench_ui.py --rows 100000
    PYTHONPATH=. python bench/bench_ui.py --snapshots DIR     # reuse a published snapshot
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _bench_sync() -> ModuleType:
    return importlib.import_module("bench.bench_sync")


def build_snapshot(workdir: Path, rows: int, seed: int) -> Path:
    """A ledger of `rows` features, one published snapshot; returns the snapshots folder."""
    from fmw.settings import load_settings
    from lake.publish import publish_snapshot

    bs = _bench_sync()
    gen = bs._load_generate()
    data_dir, log_dir, snaps = workdir / "data", workdir / "logs", workdir / "snapshots"
    env = {k: v for k, v in os.environ.items() if k not in ("FMW_DATABASE_URL", "FMW_CONFIG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(FMW_PROGRESS="0", FMW_SNAPSHOTS_DIR=str(snaps))
    config = workdir / "fmw.toml"
    fmw = bs.Fmw(config, data_dir, log_dir, env, embedded=True)
    if workdir.exists():
        if (data_dir / "pg").exists() and config.exists():
            fmw.quiet("db", "stop")
        shutil.rmtree(workdir)
    log_dir.mkdir(parents=True)
    print(f"building a {rows:,}-row ledger and snapshot in {workdir}")
    gen.generate(workdir / bs.SOURCE_FILE, rows, seed)
    bs._write_config(workdir, gen)
    try:
        for label, cmd in (("db upgrade", ("db", "upgrade")), ("mccmnc load", ("mccmnc", "load")),
                           ("sync", ("sync", "--no-progress"))):
            m = fmw.measure(label, *cmd)
            print(f"  {label}: {m.wall_s:.1f} s")
        settings = load_settings(config, data_dir, environ={"FMW_SNAPSHOTS_DIR": str(snaps)})
        start = time.perf_counter()
        manifest = publish_snapshot(settings, None)
        print(f"  publish v{manifest.version:06d}: {time.perf_counter() - start:.1f} s")
    finally:
        fmw.quiet("db", "stop")  # the explorer works from the snapshot alone
    return snaps


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    """Milliseconds of `runs` calls (after one warm-up call, reported separately)."""
    start = time.perf_counter()
    out = fn()
    cold = (time.perf_counter() - start) * 1000
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1000)
    return [cold, *times], out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(label: str, ms: list[float], note: str = "", target: str = "") -> None:
    cold, warm = ms[0], ms[1:]
    print(f"  {label:<44} first {cold:8.1f} ms   p50 {pct(warm, .5):8.1f} ms   "
          f"p95 {pct(warm, .95):8.1f} ms" + (f"   ({note})" if note else "")
          + (f"   target {target}" if target else ""))


def bench_reads(snaps: Path, runs: int) -> None:
    from datetime import date

    import streamlit.logger
    streamlit.logger.set_log_level("error")  # "no runtime" notices: the cache is not used here

    from fmw.settings import Settings
    from query import Engine, QuerySpec
    from ui import reads
    from ui.overview_filters import default_columns, facet_specs
    from ui.viewstate import ViewState

    settings = Settings(data_dir=snaps.parent / "ui-data", snapshots_dir=snaps)
    engine = Engine(settings)
    version = engine.snapshot().version
    columns = default_columns(reads.schema_names(engine, version))
    print(f"\ndata loads on snapshot v{version:06d} "
          f"({reads.snapshot_facts(engine, version).rows:,} features), {runs} runs each:")

    ms, _ = timed(lambda: (reads.snapshot_facts(engine, version),
                           reads.home_data(engine, version, date.today())), runs)
    report("Home data (facts, 5 windows, trend, run)", ms, target="<= 200 ms")
    narrow = ViewState(mcc="450", mnc="05").with_choice("status", ["enabled"])
    broad = ViewState()
    enabled = ViewState().with_choice("status", ["enabled"])
    for label, state in (("Overview page 1, narrow (450-05 enabled)", narrow),
                         ("Overview page 1, broad (no filter)", broad),
                         ("Overview page 1, broad (status=enabled)", enabled)):
        ms, res = timed(functools.partial(reads.page, engine, version,
                                          state.spec(columns=columns)), runs)
        report(label, ms, f"{res.total:,} rows match", "p95 <= 300 ms")
    ms, res = timed(lambda: reads.page(engine, version, dataclasses.replace(
        broad, page=5000).spec(columns=columns)), runs)
    report("Overview page 5,000, broad (offset 499,900)", ms)
    for label, state in (("facets, broad (5 columns, 1 query set)", broad),
                         ("facets, narrow (own filters left out)", narrow)):
        specs = facet_specs(state, reads.schema_names(engine, version))
        ms, _ = timed(functools.partial(reads.facet_counts, engine, version, specs), runs)
        report(label, ms, f"{len(specs)} facet call(s)")
    from ui.feature import MATRIX_COLUMNS
    from ui.history import JSON_COLUMNS, LIST_COLUMNS

    def history_page() -> int:
        page = reads.page(engine, version, QuerySpec(table="changes", columns=LIST_COLUMNS,
                                                     limit=50)).rows.to_pylist()
        ids = ",".join(str(r["id"]) for r in page)
        spec = QuerySpec(table="changes", filters=(("id", ids),), columns=JSON_COLUMNS,
                         limit=50)
        return reads.page(engine, version, spec).rows.num_rows

    ms, _ = timed(history_page, runs)
    report("History page 1 (50 changes + their JSON)", ms)
    name = reads.facet_counts(engine, version, [(QuerySpec(), ["feature_name"])],
                              top=1)["feature_name"][0][0]
    ms, res = timed(lambda: reads.page(engine, version, QuerySpec(
        filters=(("feature_name", name),), columns=MATRIX_COLUMNS,
        order=("operator", "mcc", "mnc"), limit=10_000)), runs)
    report("Feature matrix (one feature, all operators)", ms, f"{res.total:,} rows")
    groups = sorted(engine.snapshot(version).groups())
    per = engine.snapshot(version).groups()
    chosen, n = [], 0
    for g in groups:
        if n >= 60_000:
            break
        chosen.append(g)
        n += per[g]
    spec = QuerySpec(filters=(("feature_group", ",".join(chosen)),), columns=tuple(columns))
    total = engine.count(spec)
    for fmt, k in (("csv", runs), ("xlsx", max(2, runs // 4))):
        ms, data = timed(functools.partial(reads.export_bytes, engine, version, spec, fmt), k)
        report(f"export {fmt.upper()} of {total:,} rows", ms, f"{len(data) / MIB:.1f} MiB")
    engine.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def bench_sessions(snaps: Path, sessions: int, home_loads: int) -> None:
    from playwright.sync_api import sync_playwright

    from fmw.settings import Settings
    from ui.config import ui_config
    from ui.launch import start_ui

    settings = Settings(data_dir=snaps.parent / "ui-data", snapshots_dir=snaps)
    ui = dataclasses.replace(ui_config(settings), port=_free_port(), usage_flush_s=3600)
    log = (snaps.parent / "streamlit.log").open("wb")
    child = start_ui(settings, ui, output=log)
    try:
        child.wait_ready()
        idle = _rss(child.proc.pid)
        print(f"\nexplorer (Streamlit) at {child.url}: RSS idle {idle / MIB:,.0f} MiB")
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1366, "height": 768})
            loads = []
            page = ctx.new_page()
            for _ in range(home_loads + 1):
                start = time.perf_counter()
                page.goto(child.url)
                _settle(page)
                loads.append((time.perf_counter() - start) * 1000)
            report("Home in the browser (load to drawn)", loads, target="p95 < 1 s")
            bench_navigation(page, home_loads)
            page.goto(child.url + "overview")
            _settle(page)
            bench_filter_changes(page, home_loads)
            one = _rss(child.proc.pid)
            pages = [page]
            for _ in range(sessions - 1):
                p = ctx.new_page()
                p.goto(child.url + "overview")
                _settle(p)
                pages.append(p)
            time.sleep(2)
            many = _rss(child.proc.pid)
            ctx.close()
        growth = (many - one) / max(1, sessions - 1)
        print(f"  RSS with 1 session {one / MIB:,.0f} MiB, with {sessions} sessions "
              f"{many / MIB:,.0f} MiB: {growth / MIB:,.1f} MiB per extra session "
              f"(target <= 30 MB)")
    finally:
        child.stop()
        log.close()


NAV = ("Overview", "Feature", "History", "Home")


def bench_navigation(page: Any, rounds: int) -> None:
    """In-app navigation: a click on the page menu until the new page is drawn."""
    times = []
    for _ in range(rounds):
        for name in NAV:
            start = time.perf_counter()
            page.get_by_role("link", name=name, exact=True).first.click()
            page.wait_for_timeout(50)  # the rerun starts
            _settle(page)
            times.append((time.perf_counter() - start) * 1000)
    report("in-app navigation (menu click to drawn)", times, target="p95 < 0.5 s")


def bench_filter_changes(page: Any, rounds: int) -> None:
    """Overview filter changes: add a Status value from its list, then clear the filters;
    each until the table and counts are drawn again."""
    side = page.get_by_test_id("stSidebar")
    status = side.get_by_test_id("stMultiSelect").first
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        status.get_by_role("button", name="Open").click()
        option = page.get_by_role("option").first
        if not option.is_visible():
            page.wait_for_timeout(100)
            status.get_by_role("button", name="Open").click()
        option.click()
        page.keyboard.press("Escape")  # close the list (it hides the rest of the page)
        page.wait_for_timeout(50)
        _settle(page)
        times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        side.get_by_role("button", name="Clear filters").click()
        page.wait_for_timeout(50)
        _settle(page)
        times.append((time.perf_counter() - start) * 1000)
    report("Overview filter change (click to drawn)", times, target="p95 < 1 s")


def _settle(page: Any) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=120_000)
    page.wait_for_function("""() => !document.querySelector("[data-testid='stSkeleton']")
        && [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
           .every(c => c.querySelector('canvas, svg'))""", timeout=120_000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the extract")
    p.add_argument("--snapshots", type=Path, help="use this published snapshots folder")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out-ui",
                   help="scratch folder, emptied first (default: bench/out-ui)")
    p.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    p.add_argument("--runs", type=int, default=20, help="timed runs per measurement")
    p.add_argument("--sessions", type=int, default=20, help="browser sessions for the RSS")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    snaps = args.snapshots.resolve() if args.snapshots else build_snapshot(
        workdir, args.rows, args.seed)
    try:
        bench_reads(snaps, args.runs)
        if Path(CHROMIUM).exists():
            bench_sessions(snaps, args.sessions, home_loads=10)
        else:
            print(f"\n{CHROMIUM} is missing: session memory not measured")
    finally:
        if not args.snapshots and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
