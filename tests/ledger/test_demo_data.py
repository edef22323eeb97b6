"""Demo sources (`ledger.demo`) and the benchmark's extract generator (`bench/generate.py`).

Fast checks with the standard library and openpyxl only: the files parse in their encodings,
the rendered TOML is accepted by `load_settings`, everything is deterministic for a seed, and
the next-day data changes what it says it changes.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fmw.settings import DEFAULT_IDENTITY, load_settings
from ledger.demo import (
    DEMO_ALIASES,
    MARKER,
    demo_operators,
    render_sources_toml,
    write_demo_change_set,
    write_demo_sources,
)
from ledger.reference import mcc_mnc_table

ROOT = Path(__file__).resolve().parents[2]
CANONICAL_STATUSES = {"enabled", "disabled", "testing", "planned", "not_supported"}
FILES = ("volte_status.csv", "volte_overrides.json", "rcs_policies_kr.csv",
         "esim_policies.xlsx", "wifi_calling.jsonl")


def _generate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    target = tmp_path_factory.mktemp("demo")
    return target, write_demo_sources(target, seed=7)


def _raw_rows(target: Path, source: dict[str, Any]) -> list[dict[str, Any]]:
    """A source's records as {source column: value}, read with the standard library."""
    path = target / source["path"]
    if source["kind"] == "csv":
        encoding = "cp949" if source.get("encoding") == "cp949" else "utf-8-sig"
        return list(csv.DictReader(io.StringIO(path.read_text(encoding=encoding), newline="")))
    if source["kind"] == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if source["kind"] == "json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        for key in source["records_path"].split("."):
            doc = doc[key]
        return list(doc)
    from openpyxl import load_workbook

    ws = load_workbook(path)[source["sheet"]]
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def _canonical(target: Path, source: dict[str, Any]) -> list[dict[str, Any]]:
    """Records keyed by canonical field, constants filled in."""
    out = []
    for raw in _raw_rows(target, source):
        rec = {f: raw.get(col) for f, col in source["columns"].items()}
        out.append({**rec, **source.get("constants", {})})
    return out


def _name_key(text: str) -> str:
    """As the ledger's SQL name_key: trimmed, runs of white space folded, lower case."""
    return re.sub(r"\s+", " ", text.strip()).lower()


def _mapped(kind: str, text: str) -> str:
    aliases = {_name_key(a): c for a, c in DEMO_ALIASES[kind].items()}
    return aliases.get(_name_key(text), text.strip())


def _is_bad(rec: dict[str, Any]) -> bool:
    mcc, mnc = str(rec["mcc"] or ""), str(rec["mnc"] or "")
    return (not re.fullmatch(r"\d{3}", mcc) or not re.fullmatch(r"\d{2,3}", mnc)
            or not rec["feature_name"] or rec.get("source_updated_at") == "yesterday")


def test_sources_list_the_five_files_with_valid_kinds(demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, sources = demo
    assert [s["path"] for s in sources] == list(FILES)
    assert all((target / s["path"]).is_file() for s in sources)
    assert {s["name"]: s["mode"] for s in sources}["wifi_calling"] == "incremental"
    assert (target / MARKER).is_file()


def test_volte_csv_is_utf8_with_bom_and_english_header(demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, _ = demo
    data = (target / "volte_status.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header == ["Feature Group", "Feature", "MCC", "MNC", "Status", "Value", "Owner", "Updated"]
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert 1100 <= len(rows) <= 1300
    assert {"Enabled", "enabled ", "ON", "OFF", "trial"} <= {r["Status"] for r in rows}


def test_rcs_csv_is_cp949_with_korean_header_and_owners(demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, _ = demo
    data = (target / "rcs_policies_kr.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(data.decode("cp949"), newline="")))
    assert list(rows[0])[:4] == ["기능그룹", "기능명", "MCC", "MNC"]
    assert 250 <= len(rows) <= 350
    assert any(r["담당자"] == "김민준 (서울 운영팀)" for r in rows)
    assert {r["기능그룹"] for r in rows} == {"rcs"}


def test_esim_xlsx_has_excel_dates_text_mnc_and_an_unmapped_column(
        demo: tuple[Path, list[dict[str, Any]]]) -> None:
    from datetime import datetime

    from openpyxl import load_workbook

    target, sources = demo
    ws = load_workbook(target / "esim_policies.xlsx")["eSIM"]
    header = [c.value for c in ws[1]]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert 350 <= len(rows) <= 450
    when, mnc = header.index("Last Review"), header.index("MNC")
    assert sum(isinstance(r[when], datetime) for r in rows) >= len(rows) - 2
    assert all(isinstance(r[mnc], str) for r in rows)
    assert any(r[mnc].startswith("0") for r in rows)
    mapped = set(next(s for s in sources if s["kind"] == "xlsx")["columns"].values())
    assert "Ticket" in header and "Ticket" not in mapped


def test_every_mapped_column_is_in_its_file(demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, sources = demo
    for source in sources:
        rows = _raw_rows(target, source)
        assert rows, source["name"]
        present = set().union(*(r.keys() for r in rows))
        assert set(source["columns"].values()) <= present, source["name"]


def test_jsonl_lines_are_objects_and_aliases_map_the_group(
        demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, _ = demo
    lines = (target / "wifi_calling.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records) and 250 <= len(records) <= 350
    assert {r["group"] for r in records} == {"Wi-Fi Calling"}
    assert _mapped("feature_group", "Wi-Fi Calling") == "wifi_calling"


def test_alias_spellings_all_map_to_canonical_names(demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, sources = demo
    for source in sources:
        for rec in _canonical(target, source):
            assert _mapped("status", rec["status"]) in CANONICAL_STATUSES, (source["name"], rec)
            group = _mapped("feature_group", rec["feature_group"])
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", group), group


def test_bad_rows_are_few_and_of_each_kind(demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, sources = demo
    total, bad = 0, []
    for source in sources:
        recs = _canonical(target, source)
        own_bad = [r for r in recs if _is_bad(r)]
        assert len(own_bad) < 0.02 * len(recs), source["name"]
        total += len(recs)
        bad += own_bad
    assert 0.002 < len(bad) / total < 0.01
    assert any(r["mcc"] in ("45", 45) for r in bad) and any(r["mnc"] == "1234" for r in bad)
    assert any(not r["feature_name"] for r in bad)
    assert any(r.get("source_updated_at") == "yesterday" for r in bad)


def test_one_identity_comes_from_two_sources_with_different_status(
        demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, sources = demo
    by_name = {s["name"]: s for s in sources}

    def keyed(name: str) -> dict[tuple[str, ...], str]:
        return {(_mapped("feature_group", r["feature_group"]), _mapped("feature_name", r["feature_name"] or ""),
                 str(r["mcc"]), str(r["mnc"])): _mapped("status", r["status"])
                for r in _canonical(target, by_name[name])}

    main, overrides = keyed("volte_status"), keyed("volte_overrides")
    shared = set(main) & set(overrides)
    assert len(shared) == 1
    key = shared.pop()
    assert main[key] != overrides[key]
    names = [s["name"] for s in sources]
    assert names.index("volte_status") < names.index("volte_overrides")


def test_operators_are_real_pairs_across_countries() -> None:
    table = mcc_mnc_table().table.to_pylist()
    known = {(r["mcc"], r["mnc"]): r["operator"] for r in table if r["operator"]}
    ops = demo_operators(7)
    assert 55 <= len(ops) <= 65
    assert all(known.get((mcc, mnc)) == op for mcc, mnc, op in ops)
    assert {"450", "310", "311", "440", "262", "234", "208", "404", "505"} <= {o[0] for o in ops}


def test_toml_round_trips_and_settings_accept_it(demo: tuple[Path, list[dict[str, Any]]]) -> None:
    target, sources = demo
    text = render_sources_toml(sources)
    assert tomllib.loads(text)["sources"] == sources
    config = target / "fmw.toml"
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config=config, environ={})
    assert [s.name for s in settings.sources] == [s["name"] for s in sources]
    for cfg in settings.sources:
        assert cfg.path is not None and cfg.path.is_file()
        assert cfg.identity == DEFAULT_IDENTITY
    assert settings.source("rcs_policies_kr").column_map["owner"] == "담당자"
    assert settings.source("volte_overrides").constant_map == {"feature_group": "volte"}


def test_render_sources_toml_escapes_what_toml_needs() -> None:
    sources = [{"name": "odd", "kind": "csv", "path": 'a "b"\\c.csv', "identity": ["mcc", "mnc"],
                "timeout_s": 2.5, "flag": True, "n": 3,
                "columns": {"notes": "line1\nline2\ttab\x01", "mcc": "MCC (코드)"},
                "constants": {"weird key": "ü"}}]
    assert tomllib.loads(render_sources_toml(sources))["sources"] == sources


def test_same_seed_same_data(tmp_path: Path, demo: tuple[Path, list[dict[str, Any]]]) -> None:
    from openpyxl import load_workbook

    first, sources = demo
    again = write_demo_sources(tmp_path / "again", seed=7)
    other = tmp_path / "other"
    write_demo_sources(other, seed=8)
    assert again == sources
    for name in FILES:
        if name.endswith(".xlsx"):  # the zip and document properties carry the save time
            def cells(folder: Path, name: str = name) -> list[Any]:
                wb = load_workbook(folder / name)
                return [list(ws.iter_rows(values_only=True)) for ws in wb.worksheets]
            assert cells(first) == cells(tmp_path / "again")
        else:
            assert (first / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    assert (other / "volte_status.csv").read_bytes() != (first / "volte_status.csv").read_bytes()


def _identities(target: Path, source: dict[str, Any]) -> dict[tuple[str, ...], str]:
    return {(_mapped("feature_group", r["feature_group"]), _mapped("feature_name", r["feature_name"] or ""),
             str(r["mcc"]), str(r["mnc"])): _mapped("status", r["status"])
            for r in _canonical(target, source) if not _is_bad(r)}


def test_change_set_changes_some_statuses_and_adds_and_removes_rows(tmp_path: Path) -> None:
    sources = write_demo_sources(tmp_path / "d1", seed=7)
    write_demo_sources(tmp_path / "d2", seed=7)
    write_demo_change_set(tmp_path / "d2", seed=8)
    volte = sources[0]
    before, after = _identities(tmp_path / "d1", volte), _identities(tmp_path / "d2", volte)
    removed, added = set(before) - set(after), set(after) - set(before)
    changed = [k for k in set(before) & set(after) if before[k] != after[k]]
    assert 3 <= len(removed) <= 10 and 3 <= len(added) <= 10
    assert 0.02 < len(changed) / len(before) < 0.04
    wifi = next(s for s in sources if s["mode"] == "incremental")
    delta = _identities(tmp_path / "d2", wifi)
    assert 0 < len(delta) < 0.1 * len(_identities(tmp_path / "d1", wifi))
    # The next day is derived from day one, so writing it again gives the same files.
    snapshot = (tmp_path / "d2" / "volte_status.csv").read_bytes()
    write_demo_change_set(tmp_path / "d2", seed=8)
    assert (tmp_path / "d2" / "volte_status.csv").read_bytes() == snapshot


def test_change_set_needs_day_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_demo_change_set(tmp_path, seed=8)


def test_generate_writes_unique_identities_deterministically(tmp_path: Path) -> None:
    gen = _generate_module()
    gen.generate(tmp_path / "a.csv", 10_000, seed=3)
    gen.generate(tmp_path / "b.csv", 10_000, seed=3)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    rows = list(csv.DictReader((tmp_path / "a.csv").open(encoding="utf-8", newline="")))
    assert len(rows) == 10_000 and list(rows[0]) == list(gen.COLUMNS)
    keys = {(r["Feature Group"], r["Feature"], r["MCC"], r["MNC"]) for r in rows}
    assert len(keys) == 10_000
    assert all(re.fullmatch(r"\d{3}", r["MCC"]) and re.fullmatch(r"\d{2,3}", r["MNC"]) for r in rows)


def test_mutate_changes_exact_shares(tmp_path: Path) -> None:
    gen = _generate_module()
    gen.generate(tmp_path / "day1.csv", 10_000, seed=3)
    gen.mutate(tmp_path / "day1.csv", tmp_path / "day2.csv", changed=0.05, added_removed=0.01,
               seed=4)

    def load(name: str) -> dict[tuple[str, ...], dict[str, str]]:
        with (tmp_path / name).open(encoding="utf-8", newline="") as fh:
            return {(r["Feature Group"], r["Feature"], r["MCC"], r["MNC"]): r
                    for r in csv.DictReader(fh)}

    before, after = load("day1.csv"), load("day2.csv")
    kept = set(before) & set(after)
    changed = [k for k in kept if before[k] != after[k]]
    assert len(set(before) - set(after)) == 100
    assert len(set(after) - set(before)) == 100
    assert len(changed) == 500
    assert all(before[k]["Status"] != after[k]["Status"] for k in changed)
    assert Counter(after[k]["Updated"][:10] for k in changed) == Counter({"2025-06-03": 500})
