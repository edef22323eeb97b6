"""Publishing and retention while another process reads the current version.

On Windows a file another process holds open cannot be deleted or renamed (sharing violation,
WinError 32); under the Windows lane (the real Windows Python under Wine) these rules are real,
so this test proves there what the monkeypatched tests in test_atomic/test_retention simulate.
On POSIX the same steps must work too, where the open file simply outlives its name.
"""

from __future__ import annotations

import subprocess
import sys
import time

from lake.layout import Layout
from lake.publish import publish_snapshot
from ledger.snapshots import list_snapshots

READER = r"""
import sys, duckdb, pyarrow as pa, pyarrow.parquet as pq
path = sys.argv[1]
held = open(path, "rb")                      # a plain handle, as Excel or a copy tool has
con = duckdb.connect()
rows = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
print("reading", rows, flush=True)
sys.stdin.readline()                          # hold both until told to go
print("still", rows, pq.read_table(pa.BufferReader(held.read())).num_rows, flush=True)  # whole file
"""


def test_publish_and_retention_while_another_process_holds_the_current_version_open(
        make_settings, ledger):
    s = make_settings(ledger.settings.config_path.read_text(), FMW_SNAPSHOT_KEEP="1",
                      FMW_SNAPSHOT_GRACE_HOURS="0",
                      FMW_SNAPSHOTS_DIR=str(ledger.settings.snapshots_path))
    layout = Layout(s.snapshots_path)
    first = publish_snapshot(s, None)
    v1 = layout.version_dir(first.version)
    held = sorted(v1.rglob("*.parquet"))[0]
    reader = subprocess.Popen([sys.executable, "-c", READER, held.as_posix()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().startswith("reading ")
        second = publish_snapshot(s, None)  # the pointer moves although v1's file is open
        assert layout.read_pointer() == second.version
        status = {r.version: r.status for r in list_snapshots(ledger.conn)}
        if sys.platform == "win32":
            # keep=1 wants v1 gone, but Windows refuses while the reader holds it: kept whole
            assert held.is_file() and status[first.version] == "published"
            assert first.version in layout.versions()
        else:
            assert not v1.exists() and status[first.version] == "deleted"
        reader.stdin.write("go\n")
        reader.stdin.flush()
        line = reader.stdout.readline().split()
        assert line[0] == "still" and line[1] == line[2]  # the reader was not cut off
        assert reader.wait(30) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
    deadline = time.monotonic() + 10
    third = publish_snapshot(s, None)  # the next publish retries what could not be deleted
    while first.version in layout.versions() and time.monotonic() < deadline:
        time.sleep(0.2)
        third = publish_snapshot(s, None)
    assert layout.versions() == [third.version]
    status = {r.version: r.status for r in list_snapshots(ledger.conn)}
    assert status[first.version] == "deleted" and status[third.version] == "published"
