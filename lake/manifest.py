"""manifest.json: what a snapshot version holds, and how to check it is intact."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lake.layout import MANIFEST, SnapshotError

FORMAT = 1


@dataclass(frozen=True)
class TableInfo:
    """One table of a snapshot.

    `path` is relative to the version folder (a folder of Parquet files); `columns` lists
    (name, Arrow type as text) in file order (for features without the partition column,
    which comes from the folder names); `groups` is rows per feature_group (features only).
    """

    path: str
    rows: int
    columns: list[tuple[str, str]]
    partitioned_by: str | None = None
    groups: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    format: int
    version: int
    run_id: int | None
    created_at: str  # ISO 8601, UTC
    ledger_revision: str
    changes_window_days: int
    tables: dict[str, TableInfo]
    files: dict[str, dict[str, Any]]  # relative posix path -> {"sha256": hex, "bytes": int}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> Manifest:
        d = json.loads(text)
        tables = {k: TableInfo(**{**v, "columns": [tuple(c) for c in v["columns"]]})
                  for k, v in d["tables"].items()}
        return Manifest(**{**d, "tables": tables})


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_manifest(version_dir: Path) -> Manifest:
    """Read a version's manifest.

    Raises:
        SnapshotError: missing or not a valid manifest.
    """
    path = version_dir / MANIFEST
    try:
        m = Manifest.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotError(f"{path} is missing") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{path} is not a valid manifest: {exc}") from exc
    if m.format != FORMAT:
        raise SnapshotError(f"{path}: manifest format {m.format} is not supported (expected {FORMAT})")
    return m


def verify(version_dir: Path, manifest: Manifest) -> list[str]:
    """Problems found when checking every file's size and sha256; empty when intact."""
    problems = []
    for rel, meta in sorted(manifest.files.items()):
        p = version_dir / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = p.stat().st_size  # once: a message must name the size that failed the check
        if size != meta["bytes"]:
            problems.append(f"{rel}: {size} bytes, manifest says {meta['bytes']}")
            continue
        if sha256_file(p) != meta["sha256"]:
            problems.append(f"{rel}: checksum mismatch")
    return problems
