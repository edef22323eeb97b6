"""Sync benchmark: wall time, rows/s and peak memory of `fmw sync` on a large CSV extract.

Generates a CSV (`bench/generate.py`), writes an fmw.toml with one full-mode csv source, then
runs as subprocesses, timed: ``fmw db upgrade``, ``fmw mccmnc load`` and ``fmw sync`` three
times (initial load, unchanged re-sync, next-day extract with changes). Prints figures per
sync and a Markdown table for the README. A script that prints, not a test that asserts.

    PYTHONPATH=. python bench/bench_sync.py --rows 100000
    PYTHONPATH=. python bench/bench_sync.py                  # 1,000,000 rows

By default the ledger is the embedded PostgreSQL in ``<workdir>/data/pg`` (stopped at the
end); ``--database-url`` uses an external one instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.05
MIB = 1024 * 1024
SOURCE_FILE = "extract.csv"


@dataclass
class Measured:
    """One timed fmw subprocess."""

    label: str
    wall_s: float
    peak_rss: int  # the fmw process and its children
    peak_pg_rss: int  # the embedded PostgreSQL's processes, summed (0 when external)
    rows: int = 0
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0


def _load_generate() -> ModuleType:
    """`bench.generate`, importable however this script is started."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("bench.generate")


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _postgres(pg_dir: Path | None) -> list[psutil.Process]:
    """The postmaster named in ``postmaster.pid`` and its backends (the server outlives fmw)."""
    if pg_dir is None:
        return []
    try:
        pid = int((pg_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        return _tree(psutil.Process(pid))
    except (OSError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        return []


class Fmw:
    """Runs ``python -m fmw --config … --data-dir …`` subprocesses, logging to `log_dir`."""

    def __init__(self, config: Path, data_dir: Path, log_dir: Path, env: dict[str, str],
                 embedded: bool) -> None:
        self.base = [sys.executable, "-m", "fmw", "--config", str(config),
                     "--data-dir", str(data_dir)]
        self.log_dir = log_dir
        self.env = env
        self.pg_dir = data_dir / "pg" if embedded else None
        self.count = 0

    def measure(self, label: str, *args: str) -> Measured:
        """Run one command to completion, polling memory every `POLL_S` seconds.

        Raises:
            SystemExit: the command failed (its log's tail is printed).
        """
        self.count += 1
        log = self.log_dir / f"{self.count:02d}-{label.replace(' ', '_')}.log"
        peak = peak_pg = 0
        with log.open("wb") as out:
            start = time.perf_counter()
            proc = psutil.Popen([*self.base, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=self.env, cwd=ROOT)
            while proc.poll() is None:
                pg = _postgres(self.pg_dir)
                pg_pids = {p.pid for p in pg}
                peak_pg = max(peak_pg, _rss(pg))
                peak = max(peak, _rss([p for p in _tree(proc) if p.pid not in pg_pids]))
                time.sleep(POLL_S)
            wall = time.perf_counter() - start
        if proc.returncode != 0:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"`fmw {' '.join(args)}` exited with {proc.returncode}; "
                             f"log {log}:\n{tail}")
        return Measured(label, wall, peak, peak_pg)

    def last_run(self) -> dict[str, Any]:
        """The newest run as ``fmw runs --json --limit 1`` reports it."""
        done = subprocess.run([*self.base, "runs", "--json", "--limit", "1"], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"`fmw runs --json` failed:\n{done.stderr[-3000:]}")
        runs = json.loads(done.stdout)
        return runs[0] if runs else {}

    def quiet(self, *args: str) -> None:
        subprocess.run([*self.base, *args], env=self.env, cwd=ROOT, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _count_rows(path: Path) -> int:
    """Data rows of a generated CSV (no field holds a line break)."""
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            lines += chunk.count(b"\n")
    return max(lines - 1, 0)


def _write_config(workdir: Path, gen: ModuleType) -> Path:
    from ledger.demo import render_sources_toml

    canonical = ("feature_group", "feature_name", "mcc", "mnc", "status", "value", "owner",
                 "source_updated_at")
    source = {"name": "bench", "kind": "csv", "path": SOURCE_FILE, "mode": "full",
              "encoding": "utf-8", "columns": dict(zip(canonical, gen.COLUMNS, strict=True))}
    config = workdir / "fmw.toml"
    config.write_text("# Written by bench/bench_sync.py\n\n" + render_sources_toml([source]),
                      encoding="utf-8")
    return config


def _print_sync(m: Measured) -> None:
    run = m.run
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in (run.get("phase_seconds") or {}).items())
    print(f"  {m.label}: {m.wall_s:.1f} s wall, {m.rows_per_s:,.0f} rows/s, "
          f"peak RSS fmw {m.peak_rss / MIB:,.0f} MiB, postgres {m.peak_pg_rss / MIB:,.0f} MiB; "
          f"run {run.get('id')} {run.get('status')}: read {run.get('rows_read')}, "
          f"C {run.get('created')} U {run.get('updated')} D {run.get('deleted')} "
          f"unchanged {run.get('unchanged')}" + (f"; phases: {phases}" if phases else ""))


def markdown_table(rows: int, syncs: list[Measured]) -> str:
    """The README table: one line per sync."""
    out = [
        f"Sync of a {rows:,}-row CSV extract (one full-mode source).",
        "",
        "| sync | rows | wall (s) | rows/s | peak RSS fmw (MiB) | peak RSS postgres (MiB) "
        "| created | updated | deleted | unchanged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in syncs:
        r = m.run
        out.append(f"| {m.label} | {m.rows:,} | {m.wall_s:.1f} | {m.rows_per_s:,.0f} "
                   f"| {m.peak_rss / MIB:,.0f} | {m.peak_pg_rss / MIB:,.0f} "
                   f"| {r.get('created', '?')} | {r.get('updated', '?')} "
                   f"| {r.get('deleted', '?')} | {r.get('unchanged', '?')} |")
    out += ["", "Wall time includes Python start-up. Peak RSS is polled every 50 ms; postgres "
            "is the sum over the server's processes (shared buffers counted in each)."]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the extract")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out",
                   help="scratch folder, emptied first (default: bench/out)")
    p.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    p.add_argument("--seed", type=int, default=1)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--embedded", dest="database_url", action="store_const", const=None,
                       help="use the embedded PostgreSQL in <workdir>/data (default)")
    where.add_argument("--database-url", help="use this PostgreSQL instead (its schema is reused)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gen = _load_generate()
    workdir: Path = args.workdir.resolve()
    data_dir, log_dir = workdir / "data", workdir / "logs"
    env = {k: v for k, v in os.environ.items() if k != "FMW_DATABASE_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["FMW_PROGRESS"] = "0"
    if args.database_url:
        env["FMW_DATABASE_URL"] = args.database_url
    config = workdir / "fmw.toml"
    fmw = Fmw(config, data_dir, log_dir, env, embedded=args.database_url is None)
    if workdir.exists():
        if (data_dir / "pg").exists() and config.exists():
            fmw.quiet("db", "stop")  # a kept workdir's server must not outlive its files
        shutil.rmtree(workdir)
    log_dir.mkdir(parents=True)

    print(f"generating {args.rows:,} rows in {workdir}")
    t = time.perf_counter()
    day1, day2 = workdir / "day1.csv", workdir / "day2.csv"
    gen.generate(day1, args.rows, args.seed)
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    gen.mutate(day1, day2, changed=0.05, added_removed=0.01, seed=args.seed + 1)
    t_mut = time.perf_counter() - t
    print(f"  generate {t_gen:.1f} s ({day1.stat().st_size / MIB:,.0f} MiB), mutate {t_mut:.1f} s")
    shutil.copyfile(day1, workdir / SOURCE_FILE)
    _write_config(workdir, gen)

    syncs: list[Measured] = []
    try:
        for label, cmd in (("db upgrade", ("db", "upgrade")), ("mccmnc load", ("mccmnc", "load"))):
            m = fmw.measure(label, *cmd)
            print(f"  {label}: {m.wall_s:.1f} s")
        for label, src in (("initial", day1), ("unchanged re-sync", day1),
                           ("next day (5% U, 1% C, 1% D)", day2)):
            if src is not day1:
                shutil.copyfile(src, workdir / SOURCE_FILE)
            m = fmw.measure(label, "sync", "--no-progress", "--no-snapshot")
            m.rows = _count_rows(workdir / SOURCE_FILE)
            m.run = fmw.last_run()
            _print_sync(m)
            syncs.append(m)
    finally:
        if args.database_url is None:
            fmw.quiet("db", "stop")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(markdown_table(args.rows, syncs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
