"""Paths as admins on Windows write them: drive letters, backslashes or slashes, spaces and Korean
folder names, relative to the config file or absolute. The same test runs on Linux and under the
Windows lane (real Windows Python), where tmp_path is a `C:\\...` path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fmw.settings import load_settings
from ledger.schema import upgrade
from tests.ledger.helpers import csv_source, write_csv

ROOT = Path(__file__).resolve().parents[2]


def test_sync_and_query_with_spaces_korean_names_and_native_absolute_paths(pg_url, tmp_path):
    home = tmp_path / "FMW 설치" / "설정 폴더"
    rel_src = write_csv(_mk(home / "원본 data") / "기능 목록.csv",
                        [["volte", "VoLTE", "450", "05", "on", "", "", ""]])
    abs_src = write_csv(_mk(tmp_path / "내보내기 exports") / "rcs 정책.csv",
                        [["rcs", "Chat", "450", "08", "off", "", "", ""]])
    slash_src = write_csv(_mk(tmp_path / "other share") / "esim.csv",
                          [["esim", "Profile", "262", "01", "on", "", "", ""]])
    data_dir = tmp_path / "데이터 dir"
    cfg = home / "fmw.toml"
    # Relative to the config file; native absolute (C:\... on Windows) in a TOML literal
    # string; and the same with forward slashes, as admins also type them on Windows.
    toml = "".join(
        csv_source(name, Path("PLACEHOLDER")).replace('path = "PLACEHOLDER"', f"path = '{loc}'")
        for name, loc in (("local", f"원본 data/{rel_src.name}"), ("native", str(abs_src)),
                          ("slashes", slash_src.as_posix())))
    cfg.write_text(toml, encoding="utf-8", newline="\n")
    schema = "t_paths_" + os.urandom(4).hex()
    env = {**os.environ, "FMW_DATABASE_URL": pg_url, "FMW_SCHEMA": schema,
           "PYTHONPATH": str(ROOT), "FMW_PROGRESS": "0"}
    s = load_settings(cfg, data_dir, environ={"FMW_DATABASE_URL": pg_url, "FMW_SCHEMA": schema})
    assert [Path(src.location) for src in s.sources] == [rel_src, abs_src, slash_src]
    upgrade(s)

    def fmw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fmw", "--config", str(cfg), "--data-dir",
                               str(data_dir), *args], capture_output=True, text=True,
                              encoding="utf-8", env=env, timeout=180, cwd=tmp_path)

    p = fmw("sync")
    assert p.returncode == 0, p.stderr
    assert "created 3" in p.stdout and "published snapshot v000001" in p.stdout
    assert list(s.snapshots_path.rglob("*.parquet")) and data_dir in s.snapshots_path.parents
    out = fmw("sql", "SELECT feature_group, source FROM features ORDER BY 1", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"feature_group": "esim", "source": "slashes"},
                                      {"feature_group": "rcs", "source": "native"},
                                      {"feature_group": "volte", "source": "local"}]
    bad = fmw("sync", "--only", "nope")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
