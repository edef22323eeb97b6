"""Query benchmark: the DuckDB query layer on a 1M-row snapshot, against the PoC's pandas way.

Generates a snapshot version with pyarrow directly, exactly per `lake.layout` (50 feature
groups, real MCC/MNC pairs, unique identities, zstd, row groups of 122,880 rows, manifest with
checksums, CURRENT.json), plus the same rows as one big CSV (the PoC's input). Then, each in a
fresh child process so peak memory is its own:

* engine: opening (checksums of every file, once per version), a narrow filter
  (group + mcc + status, with the total count), a group slice to CSV, the whole table to CSV;
* poc: pandas ``read_csv`` of the big CSV, then the same filter / slice to CSV.

Prints p50/p95 per operation, peak RSS per process and the PoC/engine ratios. A script that
prints, not a test that asserts.

    PYTHONPATH=. python bench/bench_query.py                 # 1,000,000 rows
    PYTHONPATH=. python bench/bench_query.py --rows 100000 --keep /tmp/snap
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import generate as gen  # noqa: E402
from lake.layout import MANIFEST, PARTITION_COLUMN, Layout  # noqa: E402
from lake.manifest import FORMAT, Manifest, TableInfo, sha256_file  # noqa: E402

ROW_GROUP_ROWS = 122_880
BIG_CSV = "poc_extract.csv"
MIB = 1024 * 1024
NOTES = ("", "", "", "출시 완료, 전국", 'vendor said "Q3"', "line one\nline two", "검증 중",
         "see ticket FMW-12, FMW-13")


def _hashes(parts: list[pa.Array], algo: str) -> pa.Array:
    cols = [a.to_pylist() for a in parts]
    out = []
    for values in zip(*cols, strict=True):
        text = "\x1f".join("" if v is None else str(v) for v in values)
        out.append(hashlib.new(algo, text.encode()).hexdigest())
    return pa.array(out, pa.string())


def build_features(rows: int, seed: int = 7) -> pa.Table:
    """1M feature rows with unique identities, the ledger's columns, feature_group included."""
    rng = random.Random(seed)
    from ledger.reference import mcc_mnc_table

    pairs = mcc_mnc_table().table.sort_by([("mcc", "ascending"), ("mnc", "ascending")])
    groups, names = gen._feature_names()
    n_pairs = pairs.num_rows
    i = gen._arange(rows)
    pair = gen._mod(i, n_pairs)
    k = pc.divide(i, n_pairs)
    feat = gen._mod(pc.add(k, pc.multiply(pair, 7)), gen.N_FEATURES)
    cycle = pc.divide(k, gen.N_FEATURES)
    name = pc.take(names, feat)
    suffix = pc.binary_join_element_wise(" #", pc.cast(pc.add(cycle, 1), pa.string()), "")
    name = pc.if_else(pc.greater(cycle, 0), pc.binary_join_element_wise(name, suffix, ""), name)
    base = datetime(2026, 1, 1, tzinfo=UTC)

    def stamps(span_days: int) -> pa.Array:
        secs = gen._randint(rows, span_days * 86400, rng)
        start = int(base.timestamp())
        return pc.cast(pc.multiply(pc.add(secs, start), 1_000_000), pa.timestamp("us", "UTC"))

    group = pc.take(groups, feat)
    mcc, mnc = pc.take(pairs.column("mcc"), pair), pc.take(pairs.column("mnc"), pair)
    status = pc.take(pa.array(gen.STATUSES), gen._randint(rows, len(gen.STATUSES), rng))
    value = pc.take(pa.array([v or None for v in gen.VALUES]),
                    gen._randint(rows, len(gen.VALUES), rng))
    owner = pc.take(pa.array(gen.OWNERS), gen._randint(rows, len(gen.OWNERS), rng))
    table = pa.table({
        "identity_hash": _hashes([group, name, mcc, mnc], "sha256"),
        "row_hash": _hashes([status, value, owner], "md5"),
        PARTITION_COLUMN: group, "feature_name": name, "mcc": mcc, "mnc": mnc,
        "status": status, "value": value, "owner": owner,
        "notes": pc.take(pa.array([n or None for n in NOTES]),
                         gen._randint(rows, len(NOTES), rng)),
        "source": pa.repeat(pa.scalar("ops_extract"), rows),
        "source_updated_at": stamps(300),
        "region": pc.take(pairs.column("region"), pair),
        "country": pc.take(pairs.column("country"), pair),
        "country_code": pc.take(pairs.column("country_code"), pair),
        "operator": pc.take(pairs.column("operator"), pair),
        "brand": pc.take(pairs.column("brand"), pair),
        "attrs": pa.repeat(pa.scalar('{"origin": "bench"}'), rows),
        "first_run_id": pa.repeat(pa.scalar(1, pa.int64()), rows),
        "first_seen_at": pa.repeat(pa.scalar(base, pa.timestamp("us", "UTC")), rows),
        "last_run_id": pc.add(gen._randint(rows, 30, rng), 1),
        "last_changed_at": stamps(330),
    })
    return table.sort_by([(PARTITION_COLUMN, "ascending"), ("feature_name", "ascending"),
                          ("mcc", "ascending"), ("mnc", "ascending")])


def write_snapshot(root: Path, table: pa.Table, version: int = 1) -> None:
    """One published version of `table` per the layout (other tables empty), CURRENT.json."""
    layout = Layout(root)
    vdir = layout.version_dir(version)
    features = table.drop_columns([PARTITION_COLUMN])
    col = table.column(PARTITION_COLUMN)
    groups: dict[str, int] = {}
    for g in pc.unique(col).to_pylist():
        part = features.filter(pc.equal(col, g))
        path = vdir / "features" / f"{PARTITION_COLUMN}={g}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        groups[g] = part.num_rows
    infos = {"features": TableInfo("features", table.num_rows,
                                   [(f.name, str(f.type)) for f in features.schema],
                                   PARTITION_COLUMN, groups)}
    empty = pa.table({"id": pa.array([], pa.int64())})
    for t in ("changes", "runs", "daily_counts", "name_map", "mcc_mnc_map"):
        (vdir / t).mkdir(parents=True, exist_ok=True)
        pq.write_table(empty, vdir / t / "part-0.parquet", compression="zstd")
        infos[t] = TableInfo(t, 0, [("id", "int64")])
    files = {p.relative_to(vdir).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(vdir.rglob("*.parquet"))}
    m = Manifest(FORMAT, version, 1, datetime.now(UTC).isoformat(), "bench", 90, infos, files)
    (vdir / MANIFEST).write_text(m.to_json(), encoding="utf-8")
    layout.write_pointer(version)


def probes(table: pa.Table, n: int, seed: int = 11) -> list[tuple[str, str, str]]:
    """(group, mcc, status) triples that exist in the data."""
    rng = random.Random(seed)
    idx = [rng.randrange(table.num_rows) for _ in range(n)]
    t = table.take(idx)
    return list(zip(t.column(PARTITION_COLUMN).to_pylist(), t.column("mcc").to_pylist(),
                    t.column("status").to_pylist(), strict=True))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads, DuckDB's included
    return r.ru_utime + r.ru_stime


class Times(list[float]):
    cpu: list[float]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[Times, Any]:
    out, last = Times(), None
    out.cpu = []
    for _ in range(repeat):
        c, start = cpu_s(), time.perf_counter()
        last = fn()
        out.append(time.perf_counter() - start)
        out.cpu.append(cpu_s() - c)
    return out, last


def summary(times: Times) -> dict[str, float]:
    s = sorted(times)
    p95 = s[min(len(s) - 1, max(0, round(0.95 * len(s)) - 1))]
    return {"p50_ms": statistics.median(s) * 1000, "p95_ms": p95 * 1000, "n": len(s),
            "cpu_ms": statistics.median(times.cpu) * 1000, "load": os.getloadavg()[0]}


def peak_rss() -> int:
    """Peak resident memory of this process: VmHWM (Linux; unlike ru_maxrss it is not
    inherited from the parent that generated the data), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> None:
    """Start a new peak measurement (Linux: clear_refs 5 resets VmHWM to the current RSS)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measure_engine(work: Path, repeat: int) -> dict[str, Any]:
    from fmw.settings import Settings
    from query import Engine, QuerySpec

    settings = Settings(data_dir=work, snapshots_dir=work / "snapshots")
    found = json.loads((work / "probes.json").read_text())
    out: dict[str, Any] = {"rss_start": peak_rss()}
    start = time.perf_counter()
    engine = Engine(settings)
    first = engine.query(QuerySpec(limit=1))
    out["open_and_verify_ms"] = (time.perf_counter() - start) * 1000
    out["rows"] = first.total
    i = 0

    def narrow() -> int | None:
        nonlocal i
        g, mcc, status = found[i % len(found)]
        i += 1
        r = engine.query(QuerySpec(feature_group=g, filters=(("mcc", mcc), ("status", status))))
        return r.total

    narrow()  # warm
    reset_peak()
    times, _ = timed(narrow, repeat * 10)
    out["narrow"] = summary(times)
    out["rss_after_narrow"] = peak_rss()

    def csv_bytes(spec: QuerySpec) -> int:
        return sum(len(c) for c in engine.export(spec, "csv").chunks)

    j = 0

    def group_csv() -> int:
        nonlocal j
        g = found[j % len(found)][0]
        j += 1
        return csv_bytes(QuerySpec(feature_group=g))

    reset_peak()
    times, size = timed(group_csv, repeat)
    out["group_csv"] = {**summary(times), "bytes": size}
    out["rss_after_group_csv"] = peak_rss()
    reset_peak()
    times, size = timed(lambda: csv_bytes(QuerySpec()), max(3, repeat // 4))
    out["full_csv"] = {**summary(times), "bytes": size}
    out["rss_after_full_csv"] = peak_rss()
    engine.close()
    return out


def measure_poc(work: Path, repeat: int) -> dict[str, Any]:
    import pandas as pd

    found = json.loads((work / "probes.json").read_text())
    path = work / BIG_CSV
    out: dict[str, Any] = {"rss_start": peak_rss()}

    def load() -> Any:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])

    times, df = timed(load, 1)
    out["read_csv_ms"] = times[0] * 1000
    n = max(3, repeat // 4)
    i = 0

    def narrow(frame: Any | None = None) -> int:
        nonlocal i
        g, mcc, status = found[i % len(found)]
        i += 1
        d = frame if frame is not None else load()
        return int(((d[PARTITION_COLUMN] == g) & (d["mcc"] == mcc) & (d["status"] == status)).sum())

    times, _ = timed(narrow, n)
    out["narrow"] = summary(times)
    times, _ = timed(lambda: narrow(df), repeat * 10)
    out["narrow_in_memory"] = summary(times)
    j = 0

    def group_csv() -> int:
        nonlocal j
        g = found[j % len(found)][0]
        j += 1
        d = load()
        return len(d[d[PARTITION_COLUMN] == g].to_csv(index=False).encode())

    times, size = timed(group_csv, n)
    out["group_csv"] = {**summary(times), "bytes": size}
    out["rss_peak"] = peak_rss()
    return out


def child(kind: str, work: Path, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--work", str(work), "--repeat",
           str(repeat)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{kind} measurement failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--keep", type=Path, help="work folder to use and keep (default: temporary)")
    ap.add_argument("--no-poc", action="store_true", help="skip the pandas comparison")
    ap.add_argument("--child", choices=("engine", "poc"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = measure_engine if args.child == "engine" else measure_poc
        print(json.dumps(fn(args.work, args.repeat)))
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="fmw-bench-query-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not (work / "snapshots" / "CURRENT.json").is_file():
            start = time.perf_counter()
            table = build_features(args.rows)
            write_snapshot(work / "snapshots", table)
            pacsv.write_csv(table, work / BIG_CSV)
            (work / "probes.json").write_text(json.dumps(probes(table, 200)))
            print(f"generated {args.rows:,} rows in {time.perf_counter() - start:.1f} s: "
                  f"snapshot {_size(work / 'snapshots') / MIB:.0f} MiB, "
                  f"CSV {(work / BIG_CSV).stat().st_size / MIB:.0f} MiB")
        e = child("engine", work, args.repeat)
        p = None if args.no_poc else child("poc", work, args.repeat)
        report(e, p)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def report(e: dict[str, Any], p: dict[str, Any] | None) -> None:
    def ms(d: dict[str, float]) -> str:
        return (f"p50 {d['p50_ms']:8.1f} ms   p95 {d['p95_ms']:8.1f} ms   "
                f"cpu p50 {d['cpu_ms']:7.1f} ms   (n={d['n']}, load {d['load']:.1f})")

    print(f"\nengine over {e['rows']:,} rows ({os.cpu_count()} CPUs; load = 1-minute load "
          "average when measured, other processes included)")
    print(f"  first query (open + verify checksums)  {e['open_and_verify_ms']:.0f} ms")
    print(f"  narrow filter (group+mcc+status+count)  {ms(e['narrow'])}")
    print(f"  group slice to CSV ({e['group_csv']['bytes'] / MIB:.1f} MiB)     "
          f"{ms(e['group_csv'])}")
    print(f"  full table to CSV ({e['full_csv']['bytes'] / MIB:.0f} MiB)      {ms(e['full_csv'])}")
    print(f"  peak RSS of the process while: narrow filters {e['rss_after_narrow'] / MIB:.0f} MiB,"
          f" group CSVs {e['rss_after_group_csv'] / MIB:.0f} MiB, full CSVs "
          f"{e['rss_after_full_csv'] / MIB:.0f} MiB")
    if p is None:
        return
    print("\nPoC (pandas read_csv of one big CSV, then filter)")
    print(f"  read_csv alone                          {p['read_csv_ms']:.0f} ms")
    print(f"  narrow filter (read + filter)           {ms(p['narrow'])}")
    print(f"  narrow filter (frame already loaded)    {ms(p['narrow_in_memory'])}")
    print(f"  group slice to CSV (read + filter)      {ms(p['group_csv'])}")
    print(f"  peak RSS {p['rss_peak'] / MIB:.0f} MiB")
    print("\nratio PoC / engine (p50)")
    print(f"  narrow filter: {p['narrow']['p50_ms'] / e['narrow']['p50_ms']:,.0f}x "
          f"(vs an already loaded frame: "
          f"{p['narrow_in_memory']['p50_ms'] / e['narrow']['p50_ms']:.1f}x)")
    print(f"  group slice to CSV: {p['group_csv']['p50_ms'] / e['group_csv']['p50_ms']:,.0f}x")
    print(f"  peak RSS: {p['rss_peak'] / e['rss_after_full_csv']:.1f}x")


if __name__ == "__main__":
    main()
