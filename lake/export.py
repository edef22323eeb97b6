"""Write one snapshot version's Parquet files from the ledger's Arrow streams.

`plan_snapshot` decides, as data, which files a version will hold (one per feature group, one
per other table) and how many feature rows each gets; `write_files` streams the ledger into
exactly those files. Rows reach Parquet in Arrow record batches, never one by one.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.fsutil import fsync_dir, fsync_file
from lake.layout import GROUP_NAME_RE, PARTITION_COLUMN, TABLES, Layout, SnapshotError, work_name
from lake.manifest import TableInfo, sha256_file
from ledger.export import LedgerExport

#: Rows per Parquet row group: DuckDB's own row group size, so each of its scan threads gets a
#: whole row group and min/max statistics prune in the same units. Smaller groups get one.
ROW_GROUP_ROWS = 122_880
COMPRESSION = "zstd"
PART = "part-0.parquet"
#: Record batches (about 16 MB each) read ahead of the Parquet writer.
PREFETCH_BATCHES = 2
FEATURE_SORT = ("feature_name", "mcc", "mnc")


class PublishProgress:
    """Receives publish events; the CLI and the benchmark report them, others ignore them."""

    def step(self, label: str, seconds: float) -> None:
        """A step of the publish (prepare, a table, manifest, switch, retention) finished."""

    def file_written(self, table: str, path: str, rows: int, size: int) -> None:
        """One Parquet file is complete and fsynced (`path` relative to the version folder).

        Called from two threads: features and the other tables are written side by side.
        """


@dataclass(frozen=True)
class FilePlan:
    """One file of a version: its table, path (relative, posix) and group (features only)."""

    table: str
    path: str
    group: str | None = None
    rows: int | None = None  # expected rows, known up front for feature groups


@dataclass(frozen=True)
class SnapshotPlan:
    """Everything a publish will write, decided before the first byte is written."""

    version: int
    run_id: int | None
    work_dir: Path  # tmp/v000124.<pid>.<token>: where the files are written
    final_dir: Path  # versions/v000124: where the folder is renamed to when complete
    files: tuple[FilePlan, ...]

    @property
    def feature_rows(self) -> int:
        return sum(f.rows or 0 for f in self.files if f.table == "features")


def plan_snapshot(layout: Layout, version: int, run_id: int | None, group_counts: dict[str, int],
                  *, pid: int, token: str) -> SnapshotPlan:
    """The file list of a version (pure). Feature groups come in the order the ledger sends them.

    Raises:
        SnapshotError: a feature group is not usable as a folder name.
    """
    files = []
    for group, rows in group_counts.items():
        if not GROUP_NAME_RE.match(group):
            raise SnapshotError(f"feature group {group!r} cannot be a folder name")
        files.append(FilePlan("features", f"features/{PARTITION_COLUMN}={group}/{PART}", group, rows))
    files += [FilePlan(t, f"{t}/{PART}") for t in TABLES if t != "features"]
    return SnapshotPlan(version, run_id, layout.tmp_dir / work_name(version, pid, token),
                        layout.version_dir(version), tuple(files))


class PartWriter:
    """A Parquet file written from batches, in row groups of `ROW_GROUP_ROWS` rows."""

    def __init__(self, path: Path, schema: pa.Schema, sorting: tuple[str, ...] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = schema
        self.rows = 0
        sort = [pq.SortingColumn(schema.get_field_index(c)) for c in sorting]
        self._writer = pq.ParquetWriter(str(path), schema, compression=COMPRESSION,
                                        sorting_columns=sort or None)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            if self._pending_rows >= ROW_GROUP_ROWS:
                self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.Table.from_batches(self._pending, self.schema)
        whole = table.num_rows if final else table.num_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS
        if whole:
            self._writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
            self.rows += whole
        rest = table.slice(whole)
        self._pending = rest.to_batches()
        self._pending_rows = rest.num_rows

    def close(self) -> int:
        """Write what is pending and the footer, fsync; returns the rows written."""
        if self._pending_rows:
            self._flush(final=True)
        self._writer.close()
        fsync_file(self.path)
        return self.rows

    def abort(self) -> None:
        """Release the file after a failure (Windows cannot delete a file that is open)."""
        self._pending = []
        try:
            self._writer.close()
        except Exception:  # the file is discarded anyway
            pass


@dataclass(frozen=True)
class WrittenFiles:
    """What `write_files` wrote: per-table info and every file's checksum and size."""

    tables: dict[str, TableInfo]
    files: dict[str, dict[str, Any]]


def _columns(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in schema]


def write_files(plan: SnapshotPlan, source: LedgerExport, progress: PublishProgress) -> WrittenFiles:
    """Stream every table of `plan` from `source` into Parquet files under `plan.work_dir`.

    Features are written here while a second thread, on a `twin` of `source` (same ledger
    state), writes the other tables: the big `changes` export is mostly PostgreSQL's work, so
    the two overlap. Each file is fsynced, then hashed; folders are fsynced where the OS allows.

    Raises:
        SnapshotError: the ledger sent other rows than planned (a bug, not a race: the export
            reads one consistent snapshot).
    """
    files: dict[str, dict[str, Any]] = {}
    tables: dict[str, TableInfo] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def done(table: str, rel: str, rows: int) -> None:
        path = plan.work_dir / rel
        size = path.stat().st_size
        digest = sha256_file(path)
        with lock:
            files[rel] = {"sha256": digest, "bytes": size}
        progress.file_written(table, rel, rows, size)

    def others() -> None:
        try:
            with source.twin() as twin:
                for f in plan.files:
                    if f.table == "features":
                        continue
                    start = time.perf_counter()
                    reader = twin.table(f.table)
                    rows = _write_part(plan.work_dir / f.path, reader, (), stop)
                    done(f.table, f.path, rows)
                    with lock:
                        tables[f.table] = TableInfo(f.table, rows, _columns(reader.schema))
                    progress.step(f.table, time.perf_counter() - start)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(1, thread_name_prefix="fmw-export") as pool:
        rest = pool.submit(others)
        start = time.perf_counter()
        try:
            feature_files = [f for f in plan.files if f.table == "features"]
            schema, groups = _write_features(plan.work_dir, feature_files, source.features(),
                                             done, stop)
        except BaseException:
            stop.set()
            raise
        (plan.work_dir / "features").mkdir(parents=True, exist_ok=True)
        progress.step("features", time.perf_counter() - start)
        rest.result()
    tables["features"] = TableInfo("features", sum(groups.values()), _columns(schema),
                                   PARTITION_COLUMN, groups)
    for d in {(plan.work_dir / f).parent for f in files} | {plan.work_dir / "features"}:
        fsync_dir(d)
    return WrittenFiles({t: tables[t] for t in TABLES}, files)


_END = object()


def _prefetched(reader: pa.RecordBatchReader, stop: threading.Event,
                depth: int = PREFETCH_BATCHES) -> Iterator[pa.RecordBatch]:
    """`reader`'s batches, read ahead by a thread: PostgreSQL keeps sending while we compress.

    Raises:
        SnapshotError: `stop` was set (another part of the export failed).
    """
    q: queue.Queue[object] = queue.Queue(depth)
    quit_ = threading.Event()

    def put(item: object) -> bool:
        while not (stop.is_set() or quit_.is_set()):
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for batch in reader:
                if not put(batch):
                    return
            put(_END)
        except BaseException as exc:
            put(exc)

    thread = threading.Thread(target=pump, name="fmw-export-read", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    raise SnapshotError("stopped: another part of the export failed") from None
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, pa.RecordBatch)
            yield item
    finally:
        quit_.set()  # a reader blocked on a full queue gives up; one waiting on PostgreSQL
        thread.join()  # returns with its current batch


def _write_part(path: Path, reader: pa.RecordBatchReader, sorting: tuple[str, ...],
                stop: threading.Event) -> int:
    writer = PartWriter(path, reader.schema, sorting)
    try:
        for batch in _prefetched(reader, stop):
            if stop.is_set():
                raise SnapshotError("stopped: another part of the export failed")
            writer.write(batch)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def _write_features(work_dir: Path, planned: list[FilePlan], reader: pa.RecordBatchReader,
                    done: Callable[[str, str, int], None],
                    stop: threading.Event) -> tuple[pa.Schema, dict[str, int]]:
    """Cut the sorted feature stream into one file per group by the planned row counts."""
    idx = reader.schema.get_field_index(PARTITION_COLUMN)
    schema = reader.schema.remove(idx)
    todo = iter(planned)
    current: FilePlan | None = None
    writer: PartWriter | None = None
    left = 0
    groups: dict[str, int] = {}
    try:
        for batch in reader:
            if stop.is_set():
                raise SnapshotError("stopped: another part of the export failed")
            offset = 0
            while offset < batch.num_rows:
                if writer is None:
                    current = next(todo, None)
                    if current is None or not current.rows:
                        raise SnapshotError("the ledger sent more feature rows than it counted")
                    writer = PartWriter(work_dir / current.path, schema, FEATURE_SORT)
                    left = current.rows
                assert current is not None and current.group is not None
                piece = batch.slice(offset, min(left, batch.num_rows - offset))
                if not pc.all(pc.equal(piece.column(idx), current.group)).as_py():
                    raise SnapshotError(f"feature rows of group {current.group!r} are not "
                                        "contiguous")
                writer.write(piece.remove_column(idx))
                offset += piece.num_rows
                left -= piece.num_rows
                if left == 0:
                    groups[current.group] = writer.close()
                    writer = None
                    done("features", current.path, groups[current.group])
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.abort()
    if writer is not None or next(todo, None) is not None:
        raise SnapshotError("the ledger sent fewer feature rows than it counted")
    return schema, groups


def new_token() -> str:
    """A short random suffix that keeps folder names of concurrent writers apart."""
    return os.urandom(4).hex()
