"""Demo sources: realistic sample extracts for trying FMW end to end.

`write_demo_sources` writes five files in the shapes FMW meets in practice (a UTF-8-BOM CSV,
a CP949 Korean Excel export, an xlsx with real dates, an incremental JSONL feed, a nested JSON
API dump) for real operators from the shipped MCC/MNC list, with alias spellings that
`DEMO_ALIASES` maps, a few bad rows and one identity delivered by two sources.
`write_demo_change_set` rewrites them as "the next day" so a second sync records C/U/D.
Everything is deterministic for a seed.
"""

from __future__ import annotations

import csv
import json
import random
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.reference import mcc_mnc_table

#: Alias spellings in the demo data, kind -> {alias: canonical}; load them into the name map.
DEMO_ALIASES: dict[str, dict[str, str]] = {
    "feature_group": {"Wi-Fi Calling": "wifi_calling", "VoLTE": "volte", "VoNR": "vonr"},
    "feature_name": {"Voice over LTE": "VoLTE", "Voice over NR": "VoNR",
                     "VoWiFi": "Wi-Fi Calling"},
    "status": {"Enabled": "enabled", "ON": "enabled", "사용": "enabled",
               "Disabled": "disabled", "OFF": "disabled", "미사용": "disabled",
               "Testing": "testing", "trial": "testing", "시험중": "testing",
               "Planned": "planned", "계획": "planned",
               "Not Supported": "not_supported", "N/A": "not_supported", "미지원": "not_supported"},
}
#: How each source spells a canonical status; the first spelling is the most common.
_STATUS_TEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"enabled": ("enabled", "Enabled", "enabled ", "ON"),
           "disabled": ("disabled", "Disabled", "OFF"), "testing": ("testing", "Testing", "trial"),
           "planned": ("planned", "Planned"), "not_supported": ("not_supported", "Not Supported", "N/A")},
    "ko": {"enabled": ("사용",), "disabled": ("미사용",), "testing": ("시험중",),
           "planned": ("계획",), "not_supported": ("미지원",)},
}
_STATUS_WEIGHTS = {"enabled": 10, "disabled": 3, "testing": 3, "planned": 2, "not_supported": 1}
#: group -> feature -> values a row may carry.
_FEATURES: dict[str, dict[str, tuple[str, ...]]] = {
    "volte": {"VoLTE": ("", "1"), "VoLTE Roaming": ("S8HR", "LBO", ""), "ViLTE": ("", "1"),
              "EVS codec": ("EVS-WB", "EVS-SWB", "AMR-WB"), "SRVCC": ("eSRVCC", "aSRVCC", "bSRVCC"),
              "VoLTE Emergency Call": ("", "1"), "HD Voice": ("AMR-WB", "EVS-WB"),
              "Conference Call": ("3-way", "6-way"), "USSD over IMS": ("", "0"),
              "SMS over IMS": ("", "1")},
    "vonr": {"VoNR": ("", "1"), "VoNR Roaming": ("S8HR", ""), "EPS Fallback": ("redirect", "handover"),
             "EVS codec": ("EVS-SWB", "EVS-FB"), "VoNR Emergency Call": ("", "1"), "ViNR": ("", "1"),
             "NR-LTE Voice Handover": ("", "1"), "IMS Data Channel": ("", "beta"),
             "RTT": ("", "1"), "Voice Slice": ("SST 1", "SST 5")},
    "rcs": {"Chat": ("UP 2.4", "UP 2.0"), "File Transfer": ("100MB", "10MB"),
            "Group Chat": ("100", "20"), "Chatbot": ("", "1"), "Business Messaging": ("RBM", "")},
    "esim": {"Consumer eSIM": ("SGP.22 v2.5", "SGP.22 v3.0"), "eSIM Quick Transfer": ("", "1"),
             "Multiple Enabled Profiles": ("", "MEP-A1"), "Entitlement Server": ("TS.43", "ODSA"),
             "Watch eSIM": ("", "1"), "IoT eSIM": ("SGP.32", ""), "Enterprise eSIM": ("", "1")},
    "wifi_calling": {"Wi-Fi Calling": ("", "1"), "Wi-Fi Calling Roaming": ("", "0"),
                     "Emergency over Wi-Fi": ("", "1"), "LTE-WiFi Handover": ("", "1"),
                     "Video over Wi-Fi": ("", "1")},
}
#: (mcc, operators to pick): KR, US, JP, DE, GB, FR, IN, AU, CA, CN, BR -> 60 operators.
_QUOTAS = (("450", 5), ("310", 8), ("311", 4), ("440", 5), ("262", 5), ("234", 6), ("208", 5),
           ("404", 6), ("505", 4), ("302", 4), ("460", 4), ("724", 4))
_OWNERS = ("Emily Carter <emily.carter@ops.example>", "Lena Schmidt <l.schmidt@ops.example>",
           "Yuki Tanaka <y.tanaka@ops.example>", "Priya Sharma <priya.s@ops.example>",
           "Oliver Smith <o.smith@ops.example>", "Chloe Martin <c.martin@ops.example>")
_OWNERS_KO = ("김민준 (서울 운영팀)", "이서연 (서울 운영팀)", "박지훈 (RCS 파트)",
              "최유진 (품질보증팀)", "정하은 (부산 운영팀)", "강도윤 (글로벌 로밍팀)")
_NOTES_KO = ("", "", "", "단말 호환성 확인 필요", "로밍 시험 완료", "사업자 요청으로 보류",
             "RBM 계약 진행 중")
#: Day one's extracts are from this morning; the change set is from the day after.
DEMO_DAY = datetime(2025, 6, 2, 6, 0)
_DUP = ("volte", "VoLTE Roaming")  # identity also in volte_overrides.json, with another status
_BAD_ROWS = {"volte_status": ("mcc", "feature", "updated", "mnc"), "rcs_policies_kr": ("mnc", "mcc"),
             "esim_policies": ("updated", "feature"), "wifi_calling": ("mcc", "updated")}
_BAD_VALUES = {"mcc": "45", "mnc": "1234", "feature": "", "updated": "yesterday"}
#: File in the demo folder recording day one's seed, from which the next day is derived.
MARKER = ".fmw-demo.json"
#: Rows left out of day one and delivered the next day (creations).
_HELD_BACK = {"volte_status": 8, "wifi_calling": 3}

_EN_COLUMNS = {"feature_group": "Feature Group", "feature_name": "Feature", "mcc": "MCC",
               "mnc": "MNC", "status": "Status", "value": "Value", "owner": "Owner"}
_KO_COLUMNS = {"feature_group": "기능그룹", "feature_name": "기능명", "mcc": "MCC", "mnc": "MNC",
               "status": "상태", "value": "값", "owner": "담당자", "notes": "비고",
               "source_updated_at": "수정일"}
_JSON_COLUMNS = {"feature_group": "group", "feature_name": "feature", "mcc": "mcc", "mnc": "mnc",
                 "status": "status", "value": "value", "owner": "owner",
                 "source_updated_at": "updated_at"}
_OVERRIDE_COLUMNS = {"feature_name": "featureName", "mcc": "mcc", "mnc": "mnc",
                     "status": "state", "value": "value", "owner": "owner",
                     "source_updated_at": "modified"}

Record = dict[str, Any]


def demo_operators(seed: int = 7) -> list[tuple[str, str, str]]:
    """(mcc, mnc, operator) of the ~60 real operators the demo covers, sorted."""
    rng = random.Random(f"operators:{seed}")
    rows = [r for r in mcc_mnc_table().table.to_pylist()
            if r["operator"] and r["brand"] and r["status"] == "Operational"]
    picked = []
    for mcc, count in _QUOTAS:
        here = [r for r in rows if r["mcc"] == mcc]
        # Operators holding many MNCs are the big national ones: draw from the `count` largest,
        # one MNC of each before a second one of any.
        size = {op: sum(r["operator"] == op for r in here) for op in {r["operator"] for r in here}}
        big = set(sorted(size, key=lambda op: (-size[op], op))[:count])
        here = [r for r in here if r["operator"] in big]
        nth = {id(r): sum(o["operator"] == r["operator"] and o["mnc"] < r["mnc"] for o in here)
               for r in here}
        here.sort(key=lambda r: (nth[id(r)], -size[r["operator"]], r["operator"], r["mnc"]))
        picked += rng.sample(here[: count + 2], min(count, len(here)))
    return sorted((r["mcc"], r["mnc"], r["operator"]) for r in picked)


def _status(rng: random.Random) -> str:
    return rng.choices(list(_STATUS_WEIGHTS), weights=list(_STATUS_WEIGHTS.values()))[0]


def _spell(status: str, style: str, rng: random.Random) -> str:
    options = _STATUS_TEXT[style][status]
    return options[0] if rng.random() < 0.6 else rng.choice(options)


def _records(group: str, ops: list[tuple[str, str, str]], rng: random.Random, style: str,
             owners: tuple[str, ...], keep: float = 1.0) -> list[Record]:
    out = []
    for feature, values in _FEATURES[group].items():
        for mcc, mnc, operator in ops:
            if rng.random() >= keep:
                continue
            status = _status(rng)
            out.append({
                "group": group, "feature": feature, "mcc": mcc, "mnc": mnc, "status": status,
                "status_text": _spell(status, style, rng), "value": rng.choice(values),
                "owner": rng.choice(owners), "operator": operator,
                "updated": DEMO_DAY - timedelta(minutes=rng.randrange(180 * 24 * 60)),
                "notes": rng.choice(_NOTES_KO), "ticket": f"ESIM-{rng.randrange(1000, 9999)}",
            })
    return out


def _build(seed: int) -> tuple[dict[str, list[Record]], dict[str, list[Record]]]:
    """Day one's records per source, and records held back until the next day."""
    rng = random.Random(seed)
    ops = demo_operators(seed)
    volte = _records("volte", ops, rng, "en", _OWNERS) + _records("vonr", ops, rng, "en", _OWNERS)
    dup = next(r for r in volte if (r["group"], r["feature"]) == _DUP and r["mcc"] == "450")
    dup["pinned"] = True
    for r in volte:  # alias spellings, consistent per operator so no identity appears twice
        if r["mnc"].endswith("2") and r["feature"] in ("VoLTE", "VoNR"):
            r["feature_text"] = {"VoLTE": "Voice over LTE", "VoNR": "Voice over NR"}[r["feature"]]
        if r["mcc"] in ("310", "311"):
            r["group_text"] = {"volte": "VoLTE", "vonr": "VoNR"}[r["group"]]
    wifi = _records("wifi_calling", ops, rng, "en", _OWNERS)
    for r in wifi:
        r["group_text"] = "Wi-Fi Calling"
        if r["feature"] == "Wi-Fi Calling" and r["mcc"] in ("234", "262", "208"):
            r["feature_text"] = "VoWiFi"
    day = {"volte_status": volte,
           "rcs_policies_kr": _records("rcs", ops, rng, "ko", _OWNERS_KO),
           "esim_policies": _records("esim", ops, rng, "en", _OWNERS, keep=0.95),
           "wifi_calling": wifi}
    held: dict[str, list[Record]] = {}
    for name, bad in _BAD_ROWS.items():
        rows = day[name]
        held[name] = rng.sample([r for r in rows if not r.get("pinned")], _HELD_BACK.get(name, 0))
        rows = [r for r in rows if not any(r is h for h in held[name])]
        for field in bad:
            r = rng.choice([r for r in rows if not r.get("bad") and not r.get("pinned")])
            r["bad"] = True
            r[field if field != "feature" else "feature_text"] = _BAD_VALUES[field]
        day[name] = _sorted(rows)
    overrides = [dict(dup, status="disabled" if dup["status"] != "disabled" else "enabled",
                      owner="NOC override <noc@ops.example>")]
    for mcc, mnc, operator in ops[:: len(ops) // 4][:4]:
        overrides.append({"group": "volte", "feature": "VoLTE HD+ Pilot", "mcc": mcc, "mnc": mnc,
                          "status": "testing", "value": "EVS-FB", "operator": operator,
                          "owner": "NOC override <noc@ops.example>",
                          "updated": DEMO_DAY - timedelta(hours=rng.randrange(1, 72))})
    day["volte_overrides"] = overrides
    return day, held


def _sorted(rows: list[Record]) -> list[Record]:
    return sorted(rows, key=lambda r: (r["group"], r["feature"], r["mcc"], r["mnc"]))


def _stamp(r: Record, fmt: str) -> str:
    return r["updated"] if isinstance(r["updated"], str) else r["updated"].strftime(fmt)


def _write_csv(path: Path, encoding: str, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)  # Excel's dialect: CRLF line ends
        writer.writerow(header)
        writer.writerows(rows)


def _en_row(r: Record) -> list[str]:
    return [r.get("group_text", r["group"]), r.get("feature_text", r["feature"]), r["mcc"],
            r["mnc"], r["status_text"], r["value"], r["owner"]]


def _write_day(target: Path, day: dict[str, list[Record]]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    _write_csv(target / "volte_status.csv", "utf-8-sig", [*_EN_COLUMNS.values(), "Updated"],
               [[*_en_row(r), _stamp(r, "%Y-%m-%d %H:%M")] for r in day["volte_status"]])
    _write_csv(target / "rcs_policies_kr.csv", "cp949", list(_KO_COLUMNS.values()),
               [[*_en_row(r), r["notes"], _stamp(r, "%Y-%m-%d %H:%M:%S")]
                for r in day["rcs_policies_kr"]])
    _write_xlsx(target / "esim_policies.xlsx", day["esim_policies"])
    lines = [json.dumps({
        "group": r.get("group_text", r["group"]), "feature": r.get("feature_text", r["feature"]),
        "mcc": r["mcc"], "mnc": r["mnc"], "status": r["status_text"], "value": r["value"] or None,
        "owner": r["owner"], "updated_at": _stamp(r, "%Y-%m-%dT%H:%M:%SZ"),
        "meta": {"portal": "wfc-admin", "operator": r["operator"]},
    }, ensure_ascii=False) for r in day["wifi_calling"]]
    (target / "wifi_calling.jsonl").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8", newline="\n")
    items = [{"featureName": r["feature"], "mcc": r["mcc"], "mnc": r["mnc"], "state": r["status"],
              "value": r["value"], "owner": r["owner"],
              "modified": _stamp(r, "%Y-%m-%dT%H:%M:%S+00:00")} for r in day["volte_overrides"]]
    doc = {"meta": {"system": "noc-overrides", "count": len(items)}, "data": {"items": items}}
    (target / "volte_overrides.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n",
                                                 encoding="utf-8", newline="\n")


def _write_xlsx(path: Path, rows: list[Record]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    legend = wb.active
    legend.title = "Legend"
    legend.append(["Status", "Meaning"])
    for status in _STATUS_WEIGHTS:
        legend.append([status, status.replace("_", " ")])
    ws = wb.create_sheet("eSIM")
    ws.append([*_EN_COLUMNS.values(), "Last Review", "Ticket"])
    for r in rows:
        row = _en_row(r)
        mcc = int(row[2]) if row[2].isdigit() else row[2]  # Excel turns typed MCCs into numbers
        ws.append([row[0], row[1] or None, mcc, row[3], row[4], row[5] or None, row[6],
                   r["updated"], r["ticket"]])
        ws.cell(ws.max_row, 4).number_format = "@"  # MNC kept as text: "05" stays "05"
        ws.cell(ws.max_row, 8).number_format = "yyyy-mm-dd hh:mm"
    wb.save(path)


def demo_source_tables() -> list[dict[str, Any]]:
    """The ``[[sources]]`` tables for the demo files, paths relative to the config file."""
    ts = {"source_updated_at": "Updated"}
    return [
        {"name": "volte_status", "kind": "csv", "path": "volte_status.csv", "mode": "full",
         "encoding": "auto", "columns": {**_EN_COLUMNS, **ts}},
        {"name": "volte_overrides", "kind": "json", "path": "volte_overrides.json",
         "mode": "full", "records_path": "data.items", "columns": dict(_OVERRIDE_COLUMNS),
         "constants": {"feature_group": "volte"}},
        {"name": "rcs_policies_kr", "kind": "csv", "path": "rcs_policies_kr.csv", "mode": "full",
         "encoding": "cp949", "columns": dict(_KO_COLUMNS)},
        {"name": "esim_policies", "kind": "xlsx", "path": "esim_policies.xlsx", "mode": "full",
         "sheet": "eSIM", "columns": {**_EN_COLUMNS, "source_updated_at": "Last Review"}},
        {"name": "wifi_calling", "kind": "jsonl", "path": "wifi_calling.jsonl",
         "mode": "incremental", "columns": dict(_JSON_COLUMNS)},
    ]


def write_demo_sources(target: Path, seed: int = 7) -> list[dict[str, Any]]:
    """Write day one's demo extracts into `target`.

    Args:
        target: folder for the files (created); the fmw.toml using them belongs here too.
        seed: same seed, same data.

    Returns:
        The ``[[sources]]`` tables (plain dicts, paths relative to `target`); render them with
        `render_sources_toml`. Load `DEMO_ALIASES` into the name map before syncing. The seed
        is recorded in `MARKER` for `write_demo_change_set`.
    """
    day, _ = _build(seed)
    _write_day(Path(target), day)
    (Path(target) / MARKER).write_text(json.dumps({"seed": seed}) + "\n", encoding="utf-8", newline="\n")
    return demo_source_tables()


def write_demo_change_set(target: Path, seed: int = 8) -> None:
    """Rewrite the demo extracts in `target` as the next day's.

    The next day is always derived from day one (the seed `write_demo_sources` recorded in
    `MARKER`), so calling this twice with the same `seed` writes the same files. About 3% of
    the rows of each source get another status; a few rows leave ``volte_status.csv``
    (deletions) and a few new ones arrive there and in the incremental
    ``wifi_calling.jsonl`` (creations), which then holds only that day's changed and new records.

    Args:
        target: a folder `write_demo_sources` wrote.
        seed: seed of the day's changes (may equal day one's).

    Raises:
        FileNotFoundError: `target` has no `MARKER`, so day one is unknown.
    """
    marker = Path(target) / MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"{marker} not found: run write_demo_sources({target}) first")
    day, held = _build(int(json.loads(marker.read_text(encoding="utf-8"))["seed"]))
    rng = random.Random(f"next-day:{seed}")
    delta: list[Record] = []
    for name in _BAD_ROWS:
        rows = day[name]
        movable = [r for r in rows if not r.get("bad") and not r.get("pinned")]
        style = "ko" if name == "rcs_policies_kr" else "en"
        changed = rng.sample(movable, max(1, round(len(rows) * 0.03)))
        for r in changed:
            r["status"] = rng.choice([s for s in _STATUS_WEIGHTS if s != r["status"]])
            r["status_text"] = _spell(r["status"], style, rng)
            r["updated"] = DEMO_DAY + timedelta(days=1, minutes=rng.randrange(12 * 60))
        if name == "volte_status":
            gone = rng.sample(movable, 6)
            rows = [r for r in rows if not any(r is g for g in gone)]
        for r in held.get(name, []):
            r["updated"] = DEMO_DAY + timedelta(days=1, minutes=rng.randrange(12 * 60))
        rows = rows + held.get(name, [])
        if name == "wifi_calling":
            delta = changed + held[name]
        day[name] = _sorted(rows)
    day["wifi_calling"] = _sorted(delta)
    _write_day(Path(target), day)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_str(key)


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _toml_str(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def render_sources_toml(sources: list[dict[str, Any]]) -> str:
    """TOML text for ``[[sources]]`` tables: scalars and lists first, then one sub-table per dict.

    Raises:
        TypeError: a value is not a str, Path, bool, int, float, list or dict of those.
    """
    parts = []
    for source in sources:
        lines = ["[[sources]]"]
        tables = []
        for key, value in source.items():
            if isinstance(value, dict):
                tables.append((key, value))
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, table in tables:
            lines += ["", f"[sources.{_toml_key(key)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
