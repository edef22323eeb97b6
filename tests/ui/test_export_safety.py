"""The explorer's downloads are files a person opens in Excel: formula-like text is neutralised
in CSV (issue 11 §5, CSV injection) and stored as text, never as a formula, in XLSX.

Over the hand-checked snapshot of the query tests, which has cells that look like formulas.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest

from query import Engine, QuerySpec
from query.errors import QueryError
from tests.query.conftest import FEATURES_V1, make_settings, write_version
from ui import reads
from ui.sql import encoded

#: Text a spreadsheet would run as a formula, and how the CSV cell must read.
RISKY = {
    '=HYPERLINK("http://x","y")': '\'=HYPERLINK("http://x","y")',
    "+82 10": "'+82 10",
    "-5": "'-5",
    "@ops": "'@ops",
    "\ttabbed": "'\ttabbed",
    "\rcr": "'\rcr",
}
COLUMNS = ["feature_name", "value", "owner", "notes"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("exports")
    root = tmp / "snapshots"
    write_version(root, 1, FEATURES_V1)
    e = Engine(make_settings(tmp, root))
    yield e
    e.close()


def overview_export(engine: Engine, fmt: str) -> bytes:
    return reads.export_bytes(engine, 1, QuerySpec(columns=tuple(COLUMNS)), fmt)


def sql_export(engine: Engine, fmt: str) -> bytes:
    rows = engine.sql("SELECT feature_name, value, owner, notes FROM features UNION ALL "
                      "SELECT 'CR', chr(13) || 'cr', NULL, NULL").rows
    return encoded(rows, fmt)


def cells(data: bytes) -> set[str]:
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    return {c for row in csv.reader(io.StringIO(data[3:].decode(), newline="")) for c in row}


@pytest.mark.parametrize("export", [overview_export, sql_export], ids=["overview", "sql"])
def test_csv_exports_neutralise_text_that_excel_would_run(engine: Engine, export) -> None:
    """Regression (issue 11 §5): = + - @ TAB and CR cells went out unchanged."""
    got = cells(export(engine, "csv"))
    wanted = {k: v for k, v in RISKY.items() if k != "\rcr" or export is sql_export}
    assert set(wanted.values()) <= got
    assert not set(wanted) & got
    assert {"EVS-WB", "opt-in", "Minjun Kim"} <= got  # ordinary text is left alone


@pytest.mark.parametrize("export", [overview_export, sql_export], ids=["overview", "sql"])
def test_xlsx_exports_store_text_as_text_never_formulas(engine: Engine, export) -> None:
    data = export(engine, "xlsx")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet
    texts = re.findall(r'<c r="[A-Z]+\d+" t="inlineStr"><is><t[^>]*>(.*?)</t>', sheet, re.S)
    assert '=HYPERLINK("http://x","y")' in texts and "@ops" in texts  # the text, as it is
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    risky = [c for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and c.value[:1] in "=+-@\t"]
    assert {c.value for c in risky} >= {'=HYPERLINK("http://x","y")', "+82 10", "-5", "@ops"}
    assert all(c.data_type == "s" for c in risky)  # strings, not formulas ("f")


def test_numbers_stay_numbers_in_a_neutralised_csv() -> None:
    data = encoded(pa.table({"n": [-5, 3], "s": ["-5", "x"]}), "csv")
    assert data[3:].decode().splitlines() == ['"n","s"', "-5,\"'-5\"", '3,"x"']


def test_the_explorer_always_neutralises_its_csv(engine: Engine) -> None:
    """The raw file is the API's (without neutralise=1); what a person downloads is not."""
    raw = b"".join(engine.export(QuerySpec(columns=tuple(COLUMNS)), "csv", version=1,
                                 bom=True).chunks)
    assert "@ops" in cells(raw) and "@ops" not in cells(overview_export(engine, "csv"))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_downloads_are_written_to_a_file_not_gathered_in_memory(
        engine: Engine, tmp_path: Path, fmt: str) -> None:
    """Issue 12 §4: the explorer joined every chunk of a download in memory (a 1M-row CSV
    took twice its size); the query layer now writes it to a file under data_dir."""
    path = reads.export_file(engine, 1, QuerySpec(columns=tuple(COLUMNS)), fmt,
                             tmp_path / "exports", "Asia/Seoul")
    assert path.parent == tmp_path / "exports" and path.suffix == f".{fmt}"
    assert path.read_bytes() == reads.export_bytes(engine, 1, QuerySpec(columns=tuple(COLUMNS)),
                                                   fmt, "Asia/Seoul")


def test_a_failed_download_leaves_no_file(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(QueryError):
        reads.export_file(engine, 1, QuerySpec(columns=("no_such_column",)), "xlsx",
                          tmp_path / "exports")
    assert list((tmp_path / "exports").iterdir()) == []


def test_export_files_left_by_a_stopped_process_are_removed(engine: Engine, tmp_path: Path
                                                            ) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    old, recent = folder / "export-old.csv", folder / "export-recent.csv"
    for f in (old, recent):
        f.write_bytes(b"x")
    os.utime(old, (time.time() - reads.STALE_EXPORT_S - 60,) * 2)
    made = reads.export_file(engine, 1, QuerySpec(columns=tuple(COLUMNS)), "csv", folder)
    assert sorted(folder.iterdir()) == sorted([recent, made])
