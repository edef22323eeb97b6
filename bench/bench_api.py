"""HTTP API benchmark: a real `fmw serve` process on loopback, a 1M-row snapshot, many clients.

Builds a published snapshot with pyarrow (`bench/bench_query.py`'s builder: 50 groups, real
MCC/MNC pairs), starts `fmw serve` on 127.0.0.1 as a child process, then times, with keep-alive
clients in threads:

* narrow JSON (group + mcc + status filters, with the total) at 20 and 200 concurrent clients;
* one group as CSV (the largest group) at 4 clients;
* the full CSV download (every row) by one client.

Prints p50/p95/p99, requests/s, errors and the server's peak RSS. Loopback only, bounded in
requests and time. A script that prints, not a test that asserts.

    PYTHONPATH=. python bench/bench_api.py                    # 1,000,000 rows
    PYTHONPATH=. python bench/bench_api.py --rows 100000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
SERVE = ("import argparse, sys\n"
         "from fmw.cli_api import register\n"
         "from fmw.settings import load_settings\n"
         "p = argparse.ArgumentParser(prog='fmw')\n"
         "register(p.add_subparsers(dest='command', required=True))\n"
         "a = p.parse_args(sys.argv[1:])\n"
         "sys.exit(a.func(a, load_settings(None)))\n")


@dataclass
class Stats:
    label: str
    clients: int
    times: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    bytes: int = 0
    rows: int = 0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def pct(self, p: float) -> float:
        s = sorted(self.times)
        if not s:
            return 0.0
        return s[max(0, min(len(s) - 1, int(-(-len(s) * p // 100)) - 1))] * 1000

    def line(self) -> str:
        rps = len(self.times) / self.wall_s if self.wall_s else 0.0
        med = statistics.median(self.times) * 1000 if self.times else 0.0
        return (f"{self.label:<34} {self.clients:>4} clients {len(self.times):>5} req  "
                f"p50 {med:8.1f} ms  p95 {self.pct(95):8.1f} ms  p99 {self.pct(99):8.1f} ms  "
                f"{rps:8.1f} req/s  errors {self.errors}  "
                f"cpu/req server {self.server_cpu_s / max(1, len(self.times)) * 1000:.1f} ms "
                f"client {self.client_cpu_s / max(1, len(self.times)) * 1000:.1f} ms"
                + (f"  {self.bytes / len(self.times) / MIB:.1f} MiB/resp" if self.times and
                   self.bytes / len(self.times) > MIB / 2 else ""))


def build(workdir: Path, rows: int) -> dict[str, int]:
    from bench.bench_query import build_features, write_snapshot
    from lake.layout import PARTITION_COLUMN
    snaps = workdir / "snapshots"
    shutil.rmtree(snaps, ignore_errors=True)
    t0 = time.perf_counter()
    table = build_features(rows)
    write_snapshot(snaps, table)
    import pyarrow.compute as pc
    counts = pc.value_counts(table.column(PARTITION_COLUMN)).to_pylist()
    groups = {c["values"]: c["counts"] for c in counts}
    print(f"snapshot of {rows:,} rows in {len(groups)} groups written in "
          f"{time.perf_counter() - t0:.1f} s")
    (workdir / "groups.json").write_text(json.dumps(groups))
    return groups


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RssPoller(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def start_server(workdir: Path, port: int, database_url: str, *, folder: Path | None = None,
                 env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`fmw serve` on `port` over `workdir`'s snapshots; its data folder, log (and any
    fmw.toml named by FMW_CONFIG in `env_extra`) in `folder` (default: `workdir`)."""
    folder = folder or workdir
    env = {**os.environ, "FMW_SNAPSHOTS_DIR": str(workdir / "snapshots"),
           "FMW_DATA_DIR": str(folder / "data"), "FMW_DATABASE_URL": database_url,
           "PYTHONPATH": str(ROOT)}
    env.pop("FMW_CONFIG", None)
    env.update(env_extra or {})
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--port", str(port)],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: see {folder / 'server.log'}") from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start within 60 s")


def _cpu(proc: psutil.Process | None) -> float:
    t = (proc or psutil.Process()).cpu_times()
    return t.user + t.system


def load(label: str, port: int, paths: list[str], clients: int, per_client: int,
         deadline_s: float = 120.0, headers: dict[str, str] | None = None,
         server: psutil.Process | None = None) -> Stats:
    """`clients` threads, each on one keep-alive connection, `per_client` requests each.
    With `server`, the CPU time it and this process spent is recorded too."""
    stats = Stats(label, clients)
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    end = [0.0]

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        barrier.wait()
        for k in range(per_client):
            if time.monotonic() > end[0]:
                break
            path = paths[(i * per_client + k) % len(paths)]
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Accept-Encoding": "identity",
                                                   **(headers or {})})  # bytes as sent
                resp = conn.getresponse()
                n = 0
                while chunk := resp.read(1 << 20):
                    n += len(chunk)
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok, n = False, 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    stats.times.append(dt)
                    stats.bytes += n
                else:
                    stats.errors += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    end[0] = time.monotonic() + deadline_s
    cpu0 = (_cpu(server), _cpu(None)) if server is not None else (0.0, 0.0)
    t0 = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join(deadline_s + 60)
    stats.wall_s = time.perf_counter() - t0
    if server is not None:
        stats.server_cpu_s = _cpu(server) - cpu0[0]
        stats.client_cpu_s = _cpu(None) - cpu0[1]
    return stats


def wait_for_file(workdir: Path, timeout: float) -> None:
    """Wait until the server has written the current version's full CSV download."""
    deadline = time.monotonic() + timeout
    pattern = "v*/features_all.csv.gz"
    target = list((workdir / "data" / "api" / "exports").glob(pattern))
    while not target and time.monotonic() < deadline:
        time.sleep(0.5)
        target = list((workdir / "data" / "api" / "exports").glob(pattern))
    print("full CSV download cached (and its gzip copy):", bool(target))


def wait_idle(proc: psutil.Process, timeout: float = 90.0) -> float:
    """Wait until the server is idle (under 5 % of a core over half a second), so a scenario
    does not share the CPU with start-up work (checksums, the full download's file).
    Returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        before = _cpu(proc)
        time.sleep(0.5)
        if _cpu(proc) - before < 0.025:
            break
    return time.monotonic() - t0


def narrow_paths(groups: dict[str, int], n: int = 200) -> list[str]:
    import random
    rng = random.Random(3)
    names = sorted(groups)
    mccs = ("450", "310", "262", "440", "208", "234", "505", "404")
    statuses = ("enabled", "disabled", "testing")
    return [f"/api/v1/{rng.choice(names)}?" + urlencode(
        {"format": "json", "mcc": rng.choice(mccs), "status": rng.choice(statuses)})
        for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out-api")
    p.add_argument("--reuse", action="store_true", help="reuse the workdir's snapshot")
    p.add_argument("--database-url", default=None,
                   help="ledger URL for the server (default: a closed loopback port: v1 needs "
                        "no database, which this also shows)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    p.add_argument("--only", default="", help="run only scenarios whose label contains this")
    args = p.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if args.reuse and (workdir / "groups.json").is_file():
        groups = json.loads((workdir / "groups.json").read_text())
    else:
        groups = build(workdir, args.rows)
    port = free_port()
    db = args.database_url or f"postgresql://fmw@127.0.0.1:{free_port()}/fmw"
    server = start_server(workdir, port, db)
    poller = RssPoller(server.pid)
    poller.start()
    results: list[Stats] = []
    try:
        big = max(groups, key=lambda g: groups[g])
        narrow = narrow_paths(groups)
        warm = load("warm-up", port, narrow[:40] + [f"/api/v1/{big}"], 2, 20)
        print(f"warm-up: {len(warm.times)} ok, {warm.errors} errors; server RSS "
              f"{poller.peak / MIB:.0f} MiB")
        s = int(args.scale * 25)
        fresh = {"Cache-Control": "no-cache"}  # bypasses the server's response caches
        big_path, full_path = f"/api/v1/{big}", "/api/v1/features?download=1"
        plan = [
            ("narrow JSON (group+mcc+status)", narrow, 20, s, None),
            ("narrow JSON (group+mcc+status)", narrow, 200, max(2, s // 5), None),
            ("narrow JSON, uncached", narrow, 20, s, fresh),
            ("narrow JSON, uncached", narrow, 200, max(2, s // 5), fresh),
            (f"group CSV ({big}, {groups[big]:,} rows)", [big_path], 4,
             max(3, int(args.scale * 8)), None),
            ("group CSV, uncached", [big_path], 4, max(3, int(args.scale * 8)), fresh),
            (f"full CSV download ({sum(groups.values()):,} rows)", [full_path], 1,
             max(2, int(args.scale * 4)), None),
            ("full CSV download, gzip", [full_path], 1, max(2, int(args.scale * 4)),
             {"Accept-Encoding": "gzip"}),
            ("full CSV download, uncached", [full_path], 1, 2, fresh),
        ]
        wait_for_file(workdir, 120)
        for label, paths, clients, per, headers in plan:
            if args.only in label:
                wait_idle(poller.proc)
                results.append(load(label, port, paths, clients, per, headers=headers,
                                    server=poller.proc))
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        poller.stop.set()
    print()
    for r in results:
        print(r.line())
    print(f"\nserver peak RSS: {poller.peak / MIB:,.0f} MiB "
          f"(targets: narrow p95 <= 100 ms @20, <= 1 s @200, 0 errors; group CSV p50 <= 250 "
          f"ms @4; full CSV <= 1 s; RSS <= 1 GiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
