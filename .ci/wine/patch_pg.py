"""Wine-only gaps in pgserver's PostgreSQL, patched in the lane's copy of the Windows Python.

Never applied to a real install. Idempotent: a second run changes nothing.
Usage (Linux python3): python3 patch_pg.py SITE_PACKAGES
"""

import pathlib
import sys

# Wine gap: Wine 8's ntdll has no NtFlushBuffersFileEx, which PostgreSQL 16's fdatasync()
# (initdb, postgres, pg_* tools) and libpq import; initdb.exe then dies with error 127
# before it starts. Rename the import to NtYieldExecution (same length, no arguments, returns
# STATUS_SUCCESS under Wine): fdatasync becomes a no-op, so this lane makes no durability claim.
OLD = b"NtFlushBuffersFileEx\x00"
NEW = b"NtYieldExecution\x00\x00\x00\x00\x00"
assert len(OLD) == len(NEW)

# Wine gap: initdb without --locale takes the CRT's locale name, which under Wine does not
# match the collation names Wine's CRT then accepts ("English_United States.1252" vs "en-US"):
# the cluster fails to start. Give initdb the locale name Wine understands.
INITDB_OLD = "'--encoding=utf8', '-U'"
INITDB_NEW = "'--encoding=utf8', '--locale=en-US', '-U'"


def main(site: pathlib.Path) -> None:
    roots = [site / "pgserver", site / "psycopg_binary.libs"]
    n = 0
    for root in roots:
        for p in sorted(list(root.rglob("*.exe")) + list(root.rglob("*.dll"))):
            b = p.read_bytes()
            if OLD in b:
                p.write_bytes(b.replace(OLD, NEW))
                n += 1
    print(f"patch_pg: NtFlushBuffersFileEx -> NtYieldExecution in {n} binaries")

    ps = site / "pgserver" / "postgres_server.py"
    text = ps.read_text(encoding="utf-8")
    if INITDB_NEW not in text:
        if INITDB_OLD not in text:
            sys.exit(f"patch_pg: initdb arguments not found in {ps} (pgserver changed?)")
        ps.write_text(text.replace(INITDB_OLD, INITDB_NEW), encoding="utf-8")
        print("patch_pg: initdb --locale=en-US")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
