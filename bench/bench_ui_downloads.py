"""Explorer download benchmark: the Streamlit process's memory while people download the
whole table from Overview at the same time (issue 12 §4: one full export through
``st.download_button`` grew it from 293 MiB to 809 MiB and left it at 573 MiB).

Builds (or reuses) a 1M-row snapshot the way `bench/bench_ui.py` does, starts the explorer as
``fmw ui`` does (under ``/streamlit/``, as behind Nginx), opens Overview in `--clients` tabs of
Debian's chromium (one Streamlit session each, unfiltered: the full table, default columns)
and takes each tab's XLSX and CSV link. Then every tab's link is fetched at once over HTTP
with that browser's cookie, CSV first, then XLSX, reading the bodies to the end. Prints the
explorer's RSS (its process and children, sampled every 50 ms) before, at the peak and after
each round, and each round's wall time and bytes. A script that prints, not a test.

    PYTHONPATH=. python bench/bench_ui_downloads.py                  # 1,000,000 rows
    PYTHONPATH=. python bench/bench_ui_downloads.py --rows 100000
    PYTHONPATH=. python bench/bench_ui_downloads.py --snapshots DIR  # reuse a snapshot
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_ui import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    MIB,
    _free_port,
    _rss,
    _settle,
    build_snapshot,
)

BUDGET_MIB = 1024


class Peak:
    """Samples a process tree's RSS in a thread; `peak` is the highest seen since `reset`."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.peak = _rss(self.pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, _rss(self.pid))
            except psutil.Error:
                return
            self._stop.wait(self.every_s)


def fetch(url: str, cookie: str) -> int:
    """Bytes of `url`'s body, read in 64 KiB pieces and dropped (as a browser saving it)."""
    req = urllib.request.Request(url, headers={"Cookie": cookie})
    size = 0
    with urllib.request.urlopen(req, timeout=3600) as resp:  # noqa: S310
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
        while piece := resp.read(65536):
            size += len(piece)
    return size


def round_of(label: str, urls: list[str], cookie: str, peak: Peak, pid: int,
             settle_s: float) -> None:
    before = _rss(pid)
    peak.reset()
    start = time.perf_counter()
    with ThreadPoolExecutor(len(urls)) as pool:
        sizes = list(pool.map(lambda u: fetch(u, cookie), urls))
    wall = time.perf_counter() - start
    top = peak.peak
    time.sleep(settle_s)
    after = _rss(pid)
    verdict = "within" if top <= BUDGET_MIB * MIB else "OVER"
    print(f"  {len(urls)} x {label:<5} {sizes[0] / MIB:7.1f} MiB each, all done in "
          f"{wall:6.1f} s   RSS before {before / MIB:6.0f} MiB   peak {top / MIB:6.0f} MiB "
          f"({verdict} {BUDGET_MIB} MiB)   {settle_s:g} s after {after / MIB:6.0f} MiB")


def bench_downloads(snaps: Path, clients: int, settle_s: float) -> None:
    from playwright.sync_api import sync_playwright

    from fmw.settings import Settings
    from ui.config import ui_config
    from ui.launch import start_ui

    settings = Settings(data_dir=snaps.parent / "ui-data", snapshots_dir=snaps)
    ui = dataclasses.replace(ui_config(settings), port=_free_port(), usage_flush_s=3600,
                             base_url_path="streamlit")
    log = (snaps.parent / "streamlit-downloads.log").open("wb")
    child = start_ui(settings, ui, output=log)
    try:
        child.wait_ready()
        pid = child.proc.pid
        print(f"\nexplorer (Streamlit) at {child.url}: RSS idle {_rss(pid) / MIB:,.0f} MiB")
        origin = child.url.split("/streamlit/")[0]
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1366, "height": 768})
            links: dict[str, list[str]] = {"CSV": [], "XLSX": []}
            for _ in range(clients):
                page = ctx.new_page()
                page.goto(child.url + "overview")
                _settle(page)
                buttons = page.get_by_test_id("fmwDownload")
                for label in links:
                    href = buttons.filter(has_text=label).get_attribute("href")
                    if not href:
                        raise RuntimeError(f"Overview offers no {label} link (too many rows?)")
                    links[label].append(origin + href)
            total = page.get_by_text("feature(s) match").first.inner_text().split()[0]
            cookie = "; ".join(f"{c['name']}={c['value']}" for c in ctx.cookies())
            print(f"  {clients} Overview sessions open, the full table ({total} rows): RSS "
                  f"{_rss(pid) / MIB:,.0f} MiB")
            with Peak(pid) as peak:
                for label in ("CSV", "XLSX"):
                    round_of(label, links[label], cookie, peak, pid, settle_s)
            ctx.close()
        print(f"  after the sessions closed: RSS {_rss(pid) / MIB:,.0f} MiB")
    finally:
        child.stop()
        log.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the extract")
    p.add_argument("--snapshots", type=Path, help="use this published snapshots folder")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out-ui-downloads",
                   help="scratch folder, emptied first (default: bench/out-ui-downloads)")
    p.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    p.add_argument("--clients", type=int, default=5, help="concurrent downloads per round")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before the after-RSS")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: nothing measured")
        return 1
    workdir: Path = args.workdir.resolve()
    snaps = args.snapshots.resolve() if args.snapshots else build_snapshot(
        workdir, args.rows, args.seed)
    try:
        bench_downloads(snaps, args.clients, args.settle)
    finally:
        if not args.snapshots and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
