"""Reference data: regions.csv, region_for, and the MCC/MNC list loader (shipped JSON, admin CSV)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from fmw.errors import SourceError
from ledger.reference import (
    INTERNATIONAL,
    MCC_MNC_PATH,
    MCC_MNC_SCHEMA,
    REGIONS_PATH,
    MccMncLoad,
    load_regions,
    mcc_mnc_table,
    region_for,
)

# Known defects of the vendored list, pinned so an update of the file is noticed and re-checked:
# entries whose MNC is not 2-3 digits ("50144"... for France, "100 - 190" for US public safety,
# "?" twice for Guatemala) and (mcc, mnc) pairs listed again, mostly the same network under
# several territories (234/xx under GB, GG, JE, IM; 310/xx under US, GU, MP, PR, VI).
SHIPPED_INVALID_ROWS = (277, 278, 279, 280, 281, 282, 1696, 2942, 2943)
SHIPPED_DUPLICATES = 47

HEADER = "mcc,mnc,country,country_code,operator,brand"
FULL_HEADER = HEADER + ",region,status,valid_from,valid_to"


@pytest.fixture(scope="module")
def regions() -> dict[str, tuple[str, str]]:
    return load_regions()


@pytest.fixture(scope="module")
def shipped_entries() -> list[dict[str, str | None]]:
    return json.loads(MCC_MNC_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped() -> MccMncLoad:
    return mcc_mnc_table()


def _row(load: MccMncLoad, mcc: str, mnc: str) -> list[dict[str, object]]:
    return [r for r in load.table.to_pylist() if r["mcc"] == mcc and r["mnc"] == mnc]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- regions.csv and region_for ---------------------------------------------------------------

def test_regions_csv_covers_every_iso_code_plus_kosovo(regions: dict[str, tuple[str, str]]) -> None:
    lines = REGIONS_PATH.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "country_code,region,subregion"
    assert len(lines) - 1 == 250  # 249 ISO 3166-1 alpha-2 codes + XK
    assert len(regions) == 249  # AQ has no M49 region
    assert {r for r, _ in regions.values()} == {"Africa", "Americas", "Asia", "Europe", "Oceania"}


@pytest.mark.parametrize(("code", "expected"), [
    ("US", ("Americas", "Northern America")),
    ("BR", ("Americas", "Latin America and the Caribbean")),
    ("KR", ("Asia", "Eastern Asia")),
    ("GE", ("Asia", "Western Asia")),
    ("GB", ("Europe", "Northern Europe")),
    ("XK", ("Europe", "Southern Europe")),
    ("RU", ("Europe", "Eastern Europe")),
    ("EG", ("Africa", "Northern Africa")),
    ("ZA", ("Africa", "Sub-Saharan Africa")),
    ("AU", ("Oceania", "Australia and New Zealand")),
    ("GU", ("Oceania", "Micronesia")),
])
def test_regions_csv_uses_m49_regions(regions: dict[str, tuple[str, str]], code: str,
                                      expected: tuple[str, str]) -> None:
    assert regions[code] == expected


@pytest.mark.parametrize(("code", "expected"), [
    ("KR", "Asia"),
    (" us ", "Americas"),
    ("fr", "Europe"),
    ("GE-AB", "Asia"),        # subdivision falls back to its country
    ("ge-ab", "Asia"),
    ("AU/CC/CX", "Oceania"),  # shared code, all parts agree
    ("YT/RE", "Africa"),
    ("BQ/CW/SX", "Americas"),
    ("US/FR", None),          # parts disagree
    ("US/ZZ", None),          # a part is unknown
    ("ZZ", None),
    ("ZZ-01", None),
    ("AQ", None),             # no M49 region
    ("", None),
    ("  ", None),
    (None, None),
])
def test_region_for(regions: dict[str, tuple[str, str]], code: str | None,
                    expected: str | None) -> None:
    assert region_for(code, regions) == expected


@pytest.mark.parametrize(("text", "row", "reason"), [
    ("code,region,subregion\nUS,Americas,Northern America\n", 1, "header"),
    ("country_code,region,subregion\nUS,Americas,Northern America\nus,Americas,x\n", 3,
     "two upper-case letters"),
    ("country_code,region,subregion\nUS,America,Northern America\n", 2, "region 'America'"),
    ("country_code,region,subregion\nUS,Americas,\n", 2, "both"),
    ("country_code,region,subregion\nUS,Americas,Northern America\nUS,Asia,Eastern Asia\n", 3,
     "twice"),
])
def test_bad_regions_file_raises_naming_file_and_line(tmp_path: Path, text: str, row: int,
                                                      reason: str) -> None:
    path = _write(tmp_path, "regions.csv", text)
    with pytest.raises(SourceError) as info:
        load_regions(path)
    assert (info.value.source, info.value.location, info.value.row) == ("regions", str(path), row)
    assert reason in info.value.reason


# --- the shipped MCC/MNC list -----------------------------------------------------------------

def test_shipped_list_loads_every_valid_entry_once(
        shipped: MccMncLoad, shipped_entries: list[dict[str, str | None]]) -> None:
    assert shipped.table.schema == MCC_MNC_SCHEMA
    assert shipped.source == str(MCC_MNC_PATH)
    assert shipped.dropped_duplicates == SHIPPED_DUPLICATES
    assert tuple(s.row for s in shipped.skipped) == SHIPPED_INVALID_ROWS
    assert shipped.table.num_rows == (
        len(shipped_entries) - shipped.dropped_duplicates - len(shipped.skipped))
    pairs = set(zip(shipped.table["mcc"].to_pylist(), shipped.table["mnc"].to_pylist(),
                    strict=True))
    assert len(pairs) == shipped.table.num_rows
    assert shipped.table["valid_from"].null_count == shipped.table.num_rows


@pytest.mark.parametrize(("mcc", "mnc", "country", "code", "region", "operator"), [
    ("310", "410", "United States of America", "US", "Americas", "AT&T Mobility"),
    ("450", "05", "South Korea", "KR", "Asia", "SK Telecom"),
    ("289", "67", "Abkhazia", "GE-AB", "Asia", "Aquafon JSC"),
    ("505", "01", "Australia", "AU/CC/CX", "Oceania", "Telstra Corporation Limited"),
    ("901", "11", None, None, INTERNATIONAL, None),
    ("001", "01", None, None, None, "Test network"),
])
def test_shipped_entry_resolves(shipped: MccMncLoad, mcc: str, mnc: str, country: str | None,
                                code: str | None, region: str | None,
                                operator: str | None) -> None:
    [row] = _row(shipped, mcc, mnc)
    assert (row["country"], row["country_code"], row["region"]) == (country, code, region)
    if operator is not None:
        assert operator in str(row["operator"])


def test_shipped_duplicate_keeps_first_entry(shipped: MccMncLoad) -> None:
    # 310/410 is listed for the US (AT&T) and later for the US Virgin Islands (Liberty).
    [row] = _row(shipped, "310", "410")
    assert row["brand"] == "AT&T"


def test_every_shipped_country_code_gets_a_region(
        shipped: MccMncLoad, regions: dict[str, tuple[str, str]],
        shipped_entries: list[dict[str, str | None]]) -> None:
    codes = {e["countryCode"] for e in shipped_entries if e["countryCode"]}
    assert [c for c in sorted(codes) if region_for(c, regions) is None] == []
    with_code = [r for r in shipped.table.to_pylist() if r["country_code"] is not None]
    assert [r for r in with_code if r["region"] is None] == []


def test_shipped_list_is_strict_when_asked() -> None:
    with pytest.raises(SourceError) as info:
        mcc_mnc_table(on_invalid="raise")
    assert (info.value.location, info.value.row) == (str(MCC_MNC_PATH), SHIPPED_INVALID_ROWS[0])


# --- admin override files ---------------------------------------------------------------------

def test_csv_override_with_region_and_validity(tmp_path: Path) -> None:
    path = _write(tmp_path, "override.csv", "\n".join([
        f" {FULL_HEADER.replace(',', ' , ')} ",
        "310,410, United States of America ,us,AT&T Mobility,AT&T,,Operational,,",
        "001,01,Testland,ZZ,Lab,,International,Test,2024-01-01,2025-01-01",
        "",  # blank lines are skipped
        "001,01,Testland,ZZ,Lab 2,,international,Test,2025-01-01,",   # follows on: kept
        "001,01,Testland,ZZ,Lab 3,,,Test,2024-06-01,2024-07-01",      # overlaps: dropped
        "250,099,Russia,RU,Op,Br,,,,",                                  # no status, no dates
    ]) + "\n")
    load = mcc_mnc_table(path)
    assert load.source == str(path)
    assert load.dropped_duplicates == 1
    assert load.skipped == ()
    assert load.table.schema == MCC_MNC_SCHEMA
    assert load.table.to_pylist() == [
        {"mcc": "310", "mnc": "410", "country": "United States of America", "country_code": "US",
         "region": "Americas", "operator": "AT&T Mobility", "brand": "AT&T",
         "status": "Operational", "valid_from": None, "valid_to": None},
        {"mcc": "001", "mnc": "01", "country": "Testland", "country_code": "ZZ",
         "region": INTERNATIONAL, "operator": "Lab", "brand": None, "status": "Test",
         "valid_from": date(2024, 1, 1), "valid_to": date(2025, 1, 1)},
        {"mcc": "001", "mnc": "01", "country": "Testland", "country_code": "ZZ",
         "region": INTERNATIONAL, "operator": "Lab 2", "brand": None, "status": "Test",
         "valid_from": date(2025, 1, 1), "valid_to": None},
        {"mcc": "250", "mnc": "099", "country": "Russia", "country_code": "RU",
         "region": "Europe", "operator": "Op", "brand": "Br", "status": None,
         "valid_from": None, "valid_to": None},
    ]


def test_csv_with_required_columns_only(tmp_path: Path) -> None:
    path = _write(tmp_path, "min.csv", f"{HEADER}\n450,05,South Korea,KR,SK Telecom,SKT\n")
    table = mcc_mnc_table(path).table
    assert table.num_rows == 1
    assert table.column("region").to_pylist() == ["Asia"]
    assert table.column("valid_to").type == pa.date32()


def test_skip_mode_reports_bad_entries_of_an_admin_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "o.csv", f"{HEADER}\n31,410,X,US,Op,Br\n310,410,X,US,Op,Br\n")
    load = mcc_mnc_table(path, on_invalid="skip")
    assert load.table.num_rows == 1
    assert [(s.row, s.raw["mcc"]) for s in load.skipped] == [(2, "31")]


_JSON_OK = {"type": "National", "countryName": "X", "countryCode": "US", "mcc": "310",
            "mnc": "410", "brand": None, "operator": None, "status": None}


def _json(*overrides: dict[str, object]) -> str:
    return json.dumps([{**_JSON_OK, "mnc": f"{i:02d}", **o} for i, o in enumerate(overrides)])


@pytest.mark.parametrize(("name", "text", "row", "reason"), [
    pytest.param("a.json", _json({}, {"mcc": "31"}), 2, "mcc '31'", id="json-short-mcc"),
    pytest.param("a.json", _json({"mcc": "3100"}), 1, "mcc '3100'", id="json-long-mcc"),
    pytest.param("a.json", _json({"mcc": 310}), 1, "must be a string", id="json-numeric-mcc"),
    pytest.param("a.json", _json({}, {}, {"mnc": "5"}), 3, "mnc '5'", id="json-short-mnc"),
    pytest.param("a.json", _json({"mnc": "?"}), 1, "mnc '?'", id="json-unknown-mnc"),
    pytest.param("a.json", _json({"mnc": None}), 1, "mnc None", id="json-missing-mnc"),
    pytest.param("a.json", json.dumps([_JSON_OK, "310-410"]), 2, "expected an object",
                 id="json-entry-not-object"),
    pytest.param("a.json", '[{"mcc": "310",', None, "not valid JSON", id="json-unreadable"),
    pytest.param("a.json", '{"mcc": "310"}', None, "JSON array", id="json-not-a-list"),
    pytest.param("a.csv", f"{HEADER}\n310,410,X,US,Op,Br\n3a0,410,X,US,Op,Br\n", 3, "mcc '3a0'",
                 id="csv-bad-mcc"),
    pytest.param("a.csv", f"{HEADER}\n310,4100,X,US,Op,Br\n", 2, "mnc '4100'", id="csv-bad-mnc"),
    pytest.param("a.csv", f"{HEADER}\n310,,X,US,Op,Br\n", 2, "mnc None", id="csv-empty-mnc"),
    pytest.param("a.csv", f"{FULL_HEADER}\n310,410,X,US,Op,Br,,,2025-01-01,2025-01-01\n", 2,
                 "before valid_to", id="csv-from-equals-to"),
    pytest.param("a.csv", f"{FULL_HEADER}\n\n310,410,X,US,Op,Br,,,2025-02-01,2025-01-01\n", 3,
                 "before valid_to", id="csv-from-after-to"),
    pytest.param("a.csv", f"{FULL_HEADER}\n310,410,X,US,Op,Br,,,01/02/2025,\n", 2,
                 "not a date", id="csv-bad-date"),
    pytest.param("a.csv", f"{FULL_HEADER}\n310,410,X,US,Op,Br,,,2025-02-30,\n", 2,
                 "not a date", id="csv-impossible-date"),
    pytest.param("a.csv", f"{FULL_HEADER}\n310,410,X,US,Op,Br,Atlantis,,,\n", 2,
                 "region 'Atlantis'", id="csv-unknown-region"),
    pytest.param("a.csv", f"{HEADER}\n310,410,X,US,Op\n", 2, "5 fields", id="csv-short-row"),
    pytest.param("a.csv", "mcc,mnc,country,country_code,operator\n310,410,X,US,Op\n", 1,
                 "missing required column(s): brand", id="csv-missing-column"),
    pytest.param("a.csv", f"{HEADER},valid_form\n310,410,X,US,Op,Br,2025-01-01\n", 1,
                 "unknown column(s): 'valid_form'", id="csv-unknown-column"),
    pytest.param("a.csv", "", 1, "empty file", id="csv-empty"),
    pytest.param("a.txt", "310,410", None, "unsupported file type", id="unsupported-suffix"),
])
def test_bad_input_raises_naming_file_and_row(tmp_path: Path, name: str, text: str,
                                              row: int | None, reason: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(SourceError) as info:
        mcc_mnc_table(path)
    err = info.value
    assert (err.source, err.location, err.row) == ("mcc_mnc", str(path), row)
    assert reason in err.reason
    assert str(path) in str(err)


@pytest.mark.parametrize("name", ["missing.json", "missing.csv"])
def test_missing_file_raises(tmp_path: Path, name: str) -> None:
    with pytest.raises(SourceError, match="cannot read file") as info:
        mcc_mnc_table(tmp_path / name)
    assert info.value.location == str(tmp_path / name)


def test_non_utf8_csv_raises(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\n310,410,Mexico,MX,Tel\xe9fonos,B\n".encode("latin-1"))
    with pytest.raises(SourceError, match="not UTF-8"):
        mcc_mnc_table(path)
