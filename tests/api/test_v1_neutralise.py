"""The API's CSV and XLSX are raw data unless `neutralise=1` is asked for (issue 11 §5).

A program reading the API must get the values as they are; only the explorer's downloads, which
a person opens in Excel, neutralise formula-like text by default (tests/ui/test_export_safety.py).
Every serving path is checked: the whole-table file, a filtered stream and a page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import openpyxl
import pytest

from lake.publish import publish_snapshot
from ledger.sync import plan_sync, run_sync
from tests.api.conftest import Server, client, drop_schema, serve, stop
from tests.ledger.helpers import fresh_instance

RISKY = ("=1+2", "+82 10", "-x", "@ops")


def rows() -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for i, text in enumerate(RISKY):
        out.append(("volte", f"Feature {i}", "450", "05", "enabled", text, "kim", "2026-11-01"))
        out.append(("rcs", f"Feature {i}", "450", "08", "enabled", "1", text, "2026-11-01"))
    return out


@pytest.fixture(scope="module")
def risky_server(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings, _, _ = fresh_instance(pg_url, tmp_path_factory.mktemp("neutralise"), rows())
    publish_snapshot(settings, run_sync(settings, plan_sync(settings, trigger="test")).run_id)
    srv = serve(settings)
    yield srv
    stop(srv)
    drop_schema(pg_url, settings.schema)


def csv_cells(body: bytes) -> set[str]:
    text = body.decode("utf-8-sig")
    return {c for row in csv.reader(io.StringIO(text, newline="")) for c in row}


QUERIES = ["", "&status=enabled", "&limit=50"]  # the whole file, a stream, a page


@pytest.mark.parametrize("extra", QUERIES, ids=["whole", "stream", "page"])
def test_csv_is_raw_unless_neutralise_is_asked_for(risky_server: Server, extra: str) -> None:
    http = client()
    raw = http.get(f"{risky_server.url}/api/v1/features?format=csv{extra}")
    safe = http.get(f"{risky_server.url}/api/v1/features?format=csv&neutralise=1{extra}")
    assert raw.status_code == safe.status_code == 200
    assert set(RISKY) <= csv_cells(raw.content)
    assert {"'" + t for t in RISKY} <= csv_cells(safe.content)
    assert not set(RISKY) & csv_cells(safe.content)
    assert raw.headers["ETag"] != safe.headers["ETag"]


@pytest.mark.parametrize("extra", QUERIES, ids=["whole", "stream", "page"])
def test_xlsx_is_text_never_formulas_and_raw_unless_asked(risky_server: Server,
                                                          extra: str) -> None:
    http = client()

    def values(query: str) -> set[str]:
        r = http.get(f"{risky_server.url}/api/v1/features?format=xlsx{query}{extra}")
        assert r.status_code == 200
        ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
        cells = [c for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
        assert all(c.data_type == "s" for c in cells)  # never a formula ("f")
        return {c.value for c in cells}

    assert set(RISKY) <= values("")
    assert {"'" + t for t in RISKY} <= values("&neutralise=1")
