"""Loading reference data into the ledger: the MCC/MNC map and the name map (aliases)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow.compute as pc

from fmw.errors import SourceError
from ledger.reference import MCC_MNC_PATH, mcc_mnc_table
from ledger.stage import copy_table

BUILTIN_PREFIX = "builtin:"
NAME_KINDS = ("feature_group", "feature_name", "status", "operator")


@dataclass(frozen=True)
class MccMncLoaded:
    source: str
    rows: int
    replaced: int
    dropped_duplicates: int
    skipped: int


def load_mcc_mnc(conn: psycopg.Connection, path: Path | None = None) -> MccMncLoaded:
    """Replace the rows that came from `path` (default: the shipped list) in one transaction.

    Rows from an admin's file take precedence over the shipped list for the same MCC/MNC
    and day; loading the same file again replaces its earlier rows.

    Raises:
        SourceError: a bad entry, naming the file and row; nothing is changed.
    """
    loaded = mcc_mnc_table(path)
    label = (BUILTIN_PREFIX + MCC_MNC_PATH.name) if path is None else str(Path(path).resolve())
    table = loaded.table
    for name in ("valid_from", "valid_to"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.cast(table[name], "string"))
    import pyarrow as pa
    row_col = pa.array(range(1, table.num_rows + 1), pa.int64())
    table = table.add_column(0, "__row", row_col)
    with conn.transaction():
        replaced = conn.execute("DELETE FROM mcc_mnc_map WHERE source = %s", (label,)).rowcount
        conn.execute("CREATE TEMP TABLE mm_load (__row bigint, " + ", ".join(
            f"{c} text" for c in table.column_names[1:]) + ") ON COMMIT DROP")
        copy_table(conn, "mm_load", table)
        cols = "mcc, mnc, country, country_code, region, operator, brand, status"
        n = conn.execute(
            f"INSERT INTO mcc_mnc_map ({cols}, valid_from, valid_to, source) "
            f"SELECT {cols}, valid_from::date, valid_to::date, %s FROM mm_load ORDER BY __row",
            (label,),
        ).rowcount
        conn.execute("DROP TABLE mm_load")
    return MccMncLoaded(source=label, rows=n, replaced=replaced,
                        dropped_duplicates=loaded.dropped_duplicates, skipped=len(loaded.skipped))


def decode_text(data: bytes, location: str, source: str) -> str:
    """Decode a small text file: UTF-8 (with or without BOM), else CP949.

    Raises:
        SourceError: neither encoding fits.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            return data.decode("cp949")
        except UnicodeDecodeError:
            line = data[: exc.start].count(b"\n") + 1
            raise SourceError(source, f"not valid UTF-8 or CP949 (byte {exc.start}, line {line})",
                              location=location, row=line) from None


def import_name_map(conn: psycopg.Connection, path: Path, *, replace: bool = False) -> int:
    """Import aliases from a CSV with columns kind, alias, canonical (all or nothing).

    Raises:
        SourceError: missing file or column, unknown kind, empty alias/canonical (file, row).
    """
    loc = str(path)
    try:
        text = decode_text(Path(path).read_bytes(), loc, "name_map")
    except FileNotFoundError:
        raise SourceError("name_map", "file not found", location=loc) from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in ("kind", "alias", "canonical") if c not in header]
    if missing:
        raise SourceError("name_map", f"missing column(s) {', '.join(missing)}; "
                          f"found: {', '.join(header) or 'nothing'}", location=loc, row=1)
    ki, ai, ci = (header.index(c) for c in ("kind", "alias", "canonical"))
    rows: list[tuple[str, str, str]] = []
    for lineno, rec in enumerate(reader, start=2):
        if not any(c.strip() for c in rec):
            continue
        if len(rec) < len(header):
            raise SourceError("name_map", f"expected {len(header)} fields, got {len(rec)}",
                              location=loc, row=lineno)
        kind, alias, canonical = rec[ki].strip(), rec[ai].strip(), rec[ci].strip()
        if kind not in NAME_KINDS:
            raise SourceError("name_map", f"kind {kind!r} is not one of {', '.join(NAME_KINDS)}",
                              location=loc, row=lineno)
        if not alias or not canonical:
            raise SourceError("name_map", "alias and canonical must not be empty",
                              location=loc, row=lineno)
        rows.append((kind, alias, canonical))
    with conn.transaction():
        if replace:
            conn.execute("DELETE FROM name_map")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO name_map (kind, alias_key, alias, canonical) "
                "VALUES (%s, name_key(%s), %s, %s) ON CONFLICT (kind, alias_key) DO UPDATE "
                "SET alias = EXCLUDED.alias, canonical = EXCLUDED.canonical, updated_at = now()",
                [(k, a, a, c) for k, a, c in rows],
            )
    return len(rows)


def export_name_map(conn: psycopg.Connection, path: Path) -> int:
    """Write the name map as CSV (UTF-8 with BOM so Excel shows non-ASCII text)."""
    rows = conn.execute("SELECT kind, alias, canonical FROM name_map ORDER BY kind, alias_key").fetchall()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["kind", "alias", "canonical"])
    w.writerows(rows)
    Path(path).write_text(buf.getvalue(), encoding="utf-8-sig", newline="")
    return len(rows)


def set_aliases(conn: psycopg.Connection, kind: str, aliases: dict[str, str]) -> None:
    """Upsert aliases of one kind (used by the demo and by tests)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO name_map (kind, alias_key, alias, canonical) "
            "VALUES (%s, name_key(%s), %s, %s) ON CONFLICT (kind, alias_key) DO UPDATE "
            "SET canonical = EXCLUDED.canonical, updated_at = now()",
            [(kind, a, a, c) for a, c in aliases.items()],
        )


@dataclass(frozen=True)
class ShippedMccMnc:
    """What `ensure_shipped_mcc_mnc` found and did."""

    loaded: MccMncLoaded | None  # the shipped list was loaded into an empty table
    differs: int  # entries in which the stored shipped rows and the shipped file differ


def ensure_shipped_mcc_mnc(conn: psycopg.Connection) -> ShippedMccMnc:
    """Load the shipped MCC/MNC list into an empty `mcc_mnc_map`; otherwise count how far the
    stored shipped rows are from the list this FMW ships (a newer list after an upgrade).

    Raises:
        SourceError: the shipped file is bad (a packaging fault).
    """
    stored = conn.execute("SELECT count(*) FROM mcc_mnc_map").fetchone()
    if not stored or int(stored[0]) == 0:
        return ShippedMccMnc(loaded=load_mcc_mnc(conn), differs=0)
    label = BUILTIN_PREFIX + MCC_MNC_PATH.name
    table = mcc_mnc_table(None).table
    cols = ["mcc", "mnc", "country", "country_code", "region", "operator", "brand", "status",
            "valid_from", "valid_to"]
    text = table.select(cols)
    for name in ("valid_from", "valid_to"):
        i = text.schema.get_field_index(name)
        text = text.set_column(i, name, pc.cast(text[name], "string"))
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE mm_shipped (" + ", ".join(f"{c} text" for c in cols)
                     + ") ON COMMIT DROP")
        copy_table(conn, "mm_shipped", text)
        listed = ", ".join(cols[:-2]) + ", valid_from::text, valid_to::text"
        row = conn.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {listed} FROM mcc_mnc_map WHERE source = %s "
            f"EXCEPT ALL SELECT {', '.join(cols)} FROM mm_shipped) a) + "
            f"(SELECT count(*) FROM (SELECT {', '.join(cols)} FROM mm_shipped EXCEPT ALL "
            f"SELECT {listed} FROM mcc_mnc_map WHERE source = %s) b)", (label, label)).fetchone()
        conn.execute("DROP TABLE mm_shipped")
    return ShippedMccMnc(loaded=None, differs=int(row[0]) if row else 0)
