"""Snapshot benchmark: export + publish wall time, per-table times, bytes and peak memory.

Builds the benchmark ledger the way `bench/bench_sync.py` does (a generated CSV extract,
``fmw db upgrade``, ``fmw mccmnc load``, one ``fmw sync``: a million features and a million
'C' changes), then publishes snapshots in a fresh Python process, timed, twice (the second
also runs retention over the first). A script that prints, not a test that asserts.

    PYTHONPATH=. python bench/bench_publish.py --rows 100000
    PYTHONPATH=. python bench/bench_publish.py                  # 1,000,000 rows
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
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
POLL_S = 0.1  # sampling costs CPU too (psutil walks /proc): not too often on 2 cores


def _bench_sync() -> ModuleType:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("bench.bench_sync")


def child(config: Path, data_dir: Path) -> int:
    """Publish one snapshot in this process and print its timings as one JSON line."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from fmw.settings import load_settings
    from lake.export import PublishProgress
    from lake.publish import publish_snapshot

    class Timings(PublishProgress):
        def __init__(self) -> None:
            self.steps: dict[str, float] = {}
            self.files = 0

        def step(self, label: str, seconds: float) -> None:
            self.steps[label] = seconds

        def file_written(self, table: str, path: str, rows: int, size: int) -> None:
            self.files += 1

    settings = load_settings(config, data_dir)
    timings = Timings()
    start, cpu = time.perf_counter(), time.process_time()
    m = publish_snapshot(settings, None, progress=timings)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({
        "version": m.version, "wall_s": wall, "cpu_s": cpu, "steps": timings.steps,
        "files": timings.files,
        "rows": {t: i.rows for t, i in m.tables.items()},
        "bytes": {t: sum(f["bytes"] for p, f in m.files.items() if p.startswith(t + "/"))
                  for t in m.tables},
        "groups": len(m.tables["features"].groups),
    }))
    return 0


def measure_publish(base_env: dict[str, str], config: Path, data_dir: Path,
                    pg_dir: Path | None) -> dict[str, Any]:
    """Run `child` as a subprocess, polling its and PostgreSQL's memory."""
    bs = _bench_sync()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--config", str(config),
           "--data-dir", str(data_dir)]
    peak = peak_pg = 0
    pg_cpu_first: dict[int, float] = {p.pid: _cpu(p) for p in bs._postgres(pg_dir)}
    pg_cpu_last: dict[int, float] = {}
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env, cwd=ROOT)
    while proc.poll() is None:
        pg = bs._postgres(pg_dir)
        pg_pids = {p.pid for p in pg}
        peak_pg = max(peak_pg, bs._rss(pg))
        peak = max(peak, bs._rss([p for p in bs._tree(proc) if p.pid not in pg_pids]))
        for p in pg:
            pg_cpu_last[p.pid] = max(pg_cpu_last.get(p.pid, 0.0), _cpu(p))
        time.sleep(POLL_S)
    process_wall = time.perf_counter() - start
    pg_cpu = sum(v - pg_cpu_first.get(pid, 0.0) for pid, v in pg_cpu_last.items())
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"publish failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result.update(process_wall_s=process_wall, peak_rss=peak, peak_pg_rss=peak_pg, pg_cpu_s=pg_cpu)
    return result


def _cpu(p: psutil.Process) -> float:
    """CPU seconds so far (a backend's last sample before it exits is what gets counted)."""
    try:
        t = p.cpu_times()
        return float(t.user + t.system)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def report(label: str, r: dict[str, Any]) -> None:
    total = sum(r["bytes"].values())
    print(f"  {label}: v{r['version']}: export+publish {r['wall_s']:.2f} s "
          f"(process {r['process_wall_s']:.2f} s incl. Python start-up), "
          f"{r['files']} files, {total / MIB:,.1f} MiB, peak RSS {r['peak_rss'] / MIB:,.0f} MiB, "
          f"postgres {r['peak_pg_rss'] / MIB:,.0f} MiB; CPU: publisher {r['cpu_s']:.1f} s, "
          f"postgres ~{r['pg_cpu_s']:.1f} s (sampled)")
    print("    | step | seconds | rows | MiB |")
    print("    |---|---:|---:|---:|")
    for step, secs in r["steps"].items():
        rows = r["rows"].get(step)
        size = r["bytes"].get(step)
        print(f"    | {step} | {secs:.2f} | {'' if rows is None else f'{rows:,}'} "
              f"| {'' if size is None else f'{size / MIB:,.1f}'} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the extract")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "publish",
                   help="scratch folder, emptied first (default: bench/out/publish)")
    p.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reuse", action="store_true",
                   help="reuse the ledger a --keep run left in the workdir (no generate/sync)")
    p.add_argument("--publishes", type=int, default=2, help="snapshots to publish (default 2)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.config, args.data_dir)
    bs = _bench_sync()
    gen = bs._load_generate()
    workdir: Path = args.workdir.resolve()
    data_dir, log_dir = workdir / "data", workdir / "logs"
    env = {k: v for k, v in os.environ.items() if k not in ("FMW_DATABASE_URL", "FMW_CONFIG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["FMW_PROGRESS"] = "0"
    env["FMW_SNAPSHOTS_DIR"] = str(workdir / "snapshots")
    config = workdir / "fmw.toml"
    fmw = bs.Fmw(config, data_dir, log_dir, env, embedded=True)
    steps: tuple[tuple[str, tuple[str, ...]], ...] = (("db upgrade", ("db", "upgrade")),)
    reuse = args.reuse and (data_dir / "pg").exists() and config.exists()
    if not reuse:
        if workdir.exists():
            if (data_dir / "pg").exists() and config.exists():
                fmw.quiet("db", "stop")
            shutil.rmtree(workdir)
        log_dir.mkdir(parents=True)
        print(f"building a {args.rows:,}-row ledger in {workdir}")
        gen.generate(workdir / bs.SOURCE_FILE, args.rows, args.seed)
        bs._write_config(workdir, gen)
        steps += (("mccmnc load", ("mccmnc", "load")), ("sync", ("sync", "--no-progress", "--no-snapshot")))
    else:
        print(f"reusing the ledger in {workdir}")
    try:
        for label, cmd in steps:
            m = fmw.measure(label, *cmd)
            print(f"  {label}: {m.wall_s:.1f} s")
        for i in range(args.publishes):
            report(f"publish {i + 1}", measure_publish(env, config, data_dir, data_dir / "pg"))
    finally:
        fmw.quiet("db", "stop")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
