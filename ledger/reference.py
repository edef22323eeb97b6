"""Reference data: country code -> UN M49 region, and the MCC/MNC list as an Arrow table.

``data/regions.csv`` (version ``REGIONS_VERSION``) maps every ISO 3166-1 alpha-2 code to its
UN M49 region and sub-region (standard M49 sub-regions, not the intermediate regions, so all
of Latin America and the Caribbean is one sub-region and Africa splits into Northern and
Sub-Saharan). Additions to M49: XK (Kosovo) -> Europe/Southern Europe and TW (Taiwan, not
listed by M49) -> Asia/Eastern Asia. AQ (Antarctica) has no M49 region; its row is blank and it
resolves to no region. Bump ``REGIONS_VERSION`` whenever the CSV changes.

``data/mcc-mnc-list.json`` is the vendored MIT-licensed list (see its ``.LICENSE``). It has no
region; ``mcc_mnc_table`` derives one from ``countryCode`` (subdivisions such as ``GE-AB`` fall
back to ``GE``; shared codes such as ``AU/CC/CX`` resolve when all parts agree) and labels
``International`` entries (MCC 90x/99x, no country) with the region ``International``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from fmw.errors import SourceError
from ledger.sources.base import RowError

DATA_DIR = Path(__file__).parent / "data"
REGIONS_PATH = DATA_DIR / "regions.csv"
MCC_MNC_PATH = DATA_DIR / "mcc-mnc-list.json"

REGIONS_VERSION = "1"
M49_REGIONS: frozenset[str] = frozenset({"Africa", "Americas", "Asia", "Europe", "Oceania"})
INTERNATIONAL = "International"

#: What to do with an entry that fails validation: stop with `SourceError` or skip and report it.
OnInvalid = Literal["raise", "skip"]

MCC_MNC_SCHEMA = pa.schema([
    ("mcc", pa.string()),
    ("mnc", pa.string()),
    ("country", pa.string()),
    ("country_code", pa.string()),
    ("region", pa.string()),
    ("operator", pa.string()),
    ("brand", pa.string()),
    ("status", pa.string()),
    ("valid_from", pa.date32()),
    ("valid_to", pa.date32()),
])
CSV_REQUIRED: tuple[str, ...] = ("mcc", "mnc", "country", "country_code", "operator", "brand")
CSV_OPTIONAL: tuple[str, ...] = ("region", "status", "valid_from", "valid_to")
_REGIONS_HEADER = ["country_code", "region", "subregion"]
_SOURCE = "mcc_mnc"
_MCC_RE = re.compile(r"[0-9]{3}")
_MNC_RE = re.compile(r"[0-9]{2,3}")
_ALPHA2_RE = re.compile(r"[A-Z]{2}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_JSON_FIELDS = {  # shipped JSON key -> table column
    "mcc": "mcc", "mnc": "mnc", "countryName": "country", "countryCode": "country_code",
    "operator": "operator", "brand": "brand", "status": "status",
}


@dataclass(frozen=True)
class MccMncLoad:
    """The MCC/MNC table read from one file, with what was left out of it.

    `table` follows `MCC_MNC_SCHEMA`. `dropped_duplicates` counts entries whose (mcc, mnc)
    repeats an earlier entry with overlapping validity (the first one is kept). `skipped`
    lists invalid entries left out (only when loading with ``on_invalid="skip"``).
    `source` is the path that was read.
    """

    table: pa.Table
    dropped_duplicates: int
    source: str
    skipped: tuple[RowError, ...] = ()


class _Invalid(Exception):
    """One entry failed validation; carries the reason only (the caller knows the row)."""


def load_regions(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """Read the country-code -> (region, subregion) mapping.

    Args:
        path: a CSV with header ``country_code,region,subregion``; default `REGIONS_PATH`.

    Returns:
        Upper-case alpha-2 code -> (region, subregion). Codes with a blank region (AQ) are left
        out, so they resolve to no region.

    Raises:
        SourceError: (source ``"regions"``) unreadable file, wrong header, bad code or region,
            or a code listed twice; `row` is the CSV line.
    """
    path = REGIONS_PATH if path is None else Path(path)
    location = str(path)
    rows = _csv_rows(path, "regions")
    header = next(rows, None)
    if header is None or [h.strip() for h in header[1]] != _REGIONS_HEADER:
        raise SourceError("regions", f"header must be {','.join(_REGIONS_HEADER)}",
                          location=location, row=1)
    out: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for line, fields in rows:
        if len(fields) != 3:
            raise SourceError("regions", f"expected 3 fields, got {len(fields)}",
                              location=location, row=line)
        code, region, subregion = (f.strip() for f in fields)
        if not _ALPHA2_RE.fullmatch(code):
            reason = f"country_code {code!r} is not two upper-case letters"
        elif code in seen:
            reason = f"country_code {code} listed twice"
        elif region and region not in M49_REGIONS:
            reason = f"region {region!r} is not one of {', '.join(sorted(M49_REGIONS))}"
        elif bool(region) != bool(subregion):
            reason = "region and subregion must both be given or both be blank"
        else:
            seen.add(code)
            if region:
                out[code] = (region, subregion)
            continue
        raise SourceError("regions", reason, location=location, row=line)
    return out


def region_for(country_code: str | None, regions: Mapping[str, tuple[str, str]]) -> str | None:
    """Region of a country code, or None when empty or unknown.

    Case and surrounding whitespace are ignored. A subdivision (``GE-AB``) falls back to its
    country (``GE``). A shared code (``AU/CC/CX``) resolves only when every part resolves to
    the same region.
    """
    if country_code is None:
        return None
    parts = [p.strip() for p in country_code.strip().upper().split("/")]
    if not all(parts):
        return None
    found = {_region_of_one(p, regions) for p in parts}
    if len(found) != 1:
        return None
    return found.pop()


def _region_of_one(code: str, regions: Mapping[str, tuple[str, str]]) -> str | None:
    hit = regions.get(code)
    if hit is None and "-" in code:
        hit = regions.get(code.split("-", 1)[0])
    return hit[0] if hit else None


def mcc_mnc_table(path: Path | None = None, *, regions: Mapping[str, tuple[str, str]] | None = None,
                  on_invalid: OnInvalid | None = None) -> MccMncLoad:
    """Read an MCC/MNC list (the shipped JSON or an admin CSV) into an Arrow table.

    Formats, chosen by suffix: ``.json`` in the shipped list's format (an array of objects
    with ``mcc``, ``mnc``, ``countryName``, ``countryCode``, ``operator``, ``brand``,
    ``status``, ``type``); ``.csv`` with header ``mcc,mnc,country,country_code,operator,brand``
    plus optional ``region,status,valid_from,valid_to`` (a non-empty region overrides the
    derived one; dates are ``yyyy-mm-dd``, validity is ``[valid_from, valid_to)``).
    Values are stripped; empty values become null.

    Args:
        path: file to read; default the shipped list, `MCC_MNC_PATH`.
        regions: country-code mapping from `load_regions`; default the shipped one.
        on_invalid: ``"raise"`` stops at the first invalid entry and returns nothing;
            ``"skip"`` leaves invalid entries out and lists them in `MccMncLoad.skipped`.
            Default: ``"skip"`` for the shipped list (a vendored file with a few known bad
            MNCs such as ``"?"``), ``"raise"`` for any other file, so an admin file is
            applied whole or not at all.

    Returns:
        `MccMncLoad` with the table, the number of duplicates dropped and the skipped entries.

    Raises:
        SourceError: (source ``"mcc_mnc"``, `location` the path) the file cannot be read or
            parsed, a required CSV column is missing, or (with ``"raise"``) an entry is invalid:
            mcc not 3 digits, mnc not 2-3 digits, a bad date, valid_from >= valid_to, or an
            unknown region override. `row` is the 1-based JSON entry index or the CSV line
            (1 for header problems; None when the JSON itself does not parse).
    """
    shipped = path is None or Path(path).resolve() == MCC_MNC_PATH.resolve()
    path = MCC_MNC_PATH if path is None else Path(path)
    if on_invalid is None:
        on_invalid = "skip" if shipped else "raise"
    regions = load_regions() if regions is None else regions
    suffix = path.suffix.lower()
    if suffix == ".json":
        entries = _json_entries(path)
    elif suffix == ".csv":
        entries = _csv_entries(path)
    else:
        raise SourceError(_SOURCE, f"unsupported file type {suffix!r} (expected .json or .csv)",
                          location=str(path))
    known_regions = {r.casefold(): r for r, _ in regions.values()}
    known_regions[INTERNATIONAL.casefold()] = INTERNATIONAL
    # A reference list has a few thousand rows: a plain loop keeps per-row errors precise.
    columns: dict[str, list[Any]] = {name: [] for name in MCC_MNC_SCHEMA.names}
    validity: dict[tuple[str, str], list[tuple[date | None, date | None]]] = {}
    skipped: list[RowError] = []
    dropped = 0
    for row, raw, problem in entries:
        try:
            if problem is not None:
                raise _Invalid(problem)
            record = _validate(raw, regions, known_regions)
        except _Invalid as exc:
            if on_invalid == "raise":
                raise SourceError(_SOURCE, str(exc), location=str(path), row=row) from None
            skipped.append(RowError(row=row, reason=str(exc), raw=_as_text(raw)))
            continue
        key = (record["mcc"], record["mnc"])
        window = (record["valid_from"], record["valid_to"])
        if any(_overlaps(window, w) for w in validity.get(key, ())):
            dropped += 1
            continue
        validity.setdefault(key, []).append(window)
        for name in MCC_MNC_SCHEMA.names:
            columns[name].append(record[name])
    table = pa.table(columns, schema=MCC_MNC_SCHEMA)
    return MccMncLoad(table=table, dropped_duplicates=dropped, source=str(path),
                      skipped=tuple(skipped))


def _validate(raw: Mapping[str, Any], regions: Mapping[str, tuple[str, str]],
              known_regions: Mapping[str, str]) -> dict[str, Any]:
    """Turn one raw entry into a table record, or raise `_Invalid`.

    `known_regions` maps casefolded region name -> its canonical spelling.
    """
    rec = {name: _text(raw, name) for name in
           ("mcc", "mnc", "country", "country_code", "operator", "brand", "status", "region",
            "type")}
    mcc, mnc = rec["mcc"], rec["mnc"]
    if mcc is None or not _MCC_RE.fullmatch(mcc):
        raise _Invalid(f"mcc {mcc!r} must be exactly 3 digits")
    if mnc is None or not _MNC_RE.fullmatch(mnc):
        raise _Invalid(f"mnc {mnc!r} must be 2 or 3 digits")
    valid_from, valid_to = _date(raw, "valid_from"), _date(raw, "valid_to")
    if valid_from is not None and valid_to is not None and valid_from >= valid_to:
        raise _Invalid(f"valid_from {valid_from} must be before valid_to {valid_to}")
    code = rec["country_code"].upper() if rec["country_code"] else None
    region = rec["region"]
    if region is not None:
        canonical = known_regions.get(region.casefold())
        if canonical is None:
            allowed = ", ".join(sorted(known_regions.values()))
            raise _Invalid(f"region {region!r} is not one of {allowed}")
        region = canonical
    elif code is None and rec["type"] == INTERNATIONAL:
        region = INTERNATIONAL
    else:
        region = region_for(code, regions)
    return {
        "mcc": mcc, "mnc": mnc, "country": rec["country"], "country_code": code,
        "region": region, "operator": rec["operator"], "brand": rec["brand"],
        "status": rec["status"], "valid_from": valid_from, "valid_to": valid_to,
    }


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        # A number would lose leading zeros (MNC "05" -> 5), so it is never guessed back.
        raise _Invalid(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value.strip() or None


def _date(raw: Mapping[str, Any], name: str) -> date | None:
    value = _text(raw, name)
    if value is None:
        return None
    try:
        if not _DATE_RE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"{name} {value!r} is not a date (yyyy-mm-dd)") from None


def _overlaps(a: tuple[date | None, date | None], b: tuple[date | None, date | None]) -> bool:
    """Whether two half-open validity windows share a day; None is an open end."""
    a_from, a_to = a
    b_from, b_to = b
    starts_before_b_ends = a_from is None or b_to is None or a_from < b_to
    b_starts_before_a_ends = b_from is None or a_to is None or b_from < a_to
    return starts_before_b_ends and b_starts_before_a_ends


def _as_text(raw: Mapping[str, Any]) -> dict[str, str | None]:
    return {str(k): None if v is None else str(v) for k, v in raw.items()}


#: (row, entry keyed by table column names, why the entry cannot be read at all or None)
_Entry = tuple[int, Mapping[str, Any], str | None]


def _json_entries(path: Path) -> Iterator[_Entry]:
    """Yield (1-based entry index, entry, problem) from a file in the shipped format."""
    location = str(path)
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise SourceError(_SOURCE, f"cannot read file: {exc.strerror or exc}",
                          location=location) from exc
    except UnicodeDecodeError as exc:
        raise SourceError(_SOURCE, f"not UTF-8 text: {exc.reason}", location=location) from exc
    except json.JSONDecodeError as exc:
        raise SourceError(_SOURCE, f"not valid JSON: {exc.msg} at line {exc.lineno} column "
                          f"{exc.colno}", location=location) from exc
    if not isinstance(data, list):
        raise SourceError(_SOURCE, f"expected a JSON array of entries, got {type(data).__name__}",
                          location=location)
    return _renamed_json_entries(data)


def _renamed_json_entries(data: list[Any]) -> Iterator[_Entry]:
    for index, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            yield index, {"entry": entry}, f"expected an object, got {type(entry).__name__}"
            continue
        renamed = {column: entry.get(key) for key, column in _JSON_FIELDS.items()}
        renamed["type"] = entry.get("type")
        yield index, renamed, None


def _csv_entries(path: Path) -> Iterator[_Entry]:
    """Yield (CSV line, entry, problem) from an admin override file after checking its header."""
    location = str(path)
    rows = _csv_rows(path, _SOURCE)
    first = next(rows, None)
    if first is None:
        raise SourceError(_SOURCE, "empty file: no header", location=location, row=1)
    header_line, header = first
    names = [h.strip().lower() for h in header]
    problems = []
    missing = [c for c in CSV_REQUIRED if c not in names]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    unknown = [n for n in names if n not in CSV_REQUIRED + CSV_OPTIONAL]
    if unknown:
        problems.append(f"unknown column(s): {', '.join(map(repr, unknown))}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"repeated column(s): {', '.join(repeated)}")
    if problems:
        raise SourceError(_SOURCE, "; ".join(problems), location=location, row=header_line)
    return _csv_records(names, rows)


def _csv_records(names: list[str], rows: Iterator[tuple[int, list[str]]]) -> Iterator[_Entry]:
    for line, fields in rows:
        if len(fields) != len(names):
            problem = f"{len(fields)} fields, the header has {len(names)}"
            yield line, {str(i): f for i, f in enumerate(fields, start=1)}, problem
            continue
        yield line, dict(zip(names, fields, strict=True)), None


def _csv_rows(path: Path, source: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for each non-blank CSV record; errors name the line."""
    location = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SourceError(source, f"cannot read file: {exc.strerror or exc}",
                          location=location) from exc
    except UnicodeDecodeError as exc:
        raise SourceError(source, f"not UTF-8 text: {exc.reason}", location=location) from exc
    return _records(csv.reader(io.StringIO(text, newline="")), source, location)


def _records(reader: Any, source: str, location: str) -> Iterator[tuple[int, list[str]]]:
    start = 1
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise SourceError(source, f"malformed CSV: {exc}", location=location,
                          row=reader.line_num) from exc
