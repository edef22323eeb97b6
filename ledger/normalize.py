"""Set-based normalisation, validation, enrichment and hashing of staged rows, as SQL.

One INSERT … SELECT per source turns its raw text table into rows of the `stage` table:
clean (NFC + trim), map aliases through `name_map`, enrich from `mcc_mnc_map` valid on the run
day, validate (with a reason per bad row) and hash. The identity encoding is documented in
`ledger.identity`; `tests/ledger/test_identity.py` checks that SQL and Python agree.
"""

from __future__ import annotations

from typing import Any

from fmw.settings import CANONICAL_FIELDS, SourceConfig
from ledger.identity import clean, ordered_identity
from ledger.sources.base import ROW_COLUMN
from ledger.stage import quote_ident

#: Feature groups become folder names and URL path segments, so they are kept simple.
GROUP_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAPPED_KINDS = ("feature_group", "feature_name", "status", "operator")
STATE_FIELDS = ("feature_group", "feature_name", "mcc", "mnc", "status", "value", "owner", "notes",
                "source", "source_updated_at", "region", "country", "country_code", "operator",
                "brand", "attrs")

STAGE_DDL = """
CREATE TEMP TABLE stage (
    src_rank int NOT NULL, source text NOT NULL, row_no bigint NOT NULL,
    feature_group text, feature_name text, mcc text, mnc text, status text, value text,
    owner text, notes text, source_updated_at timestamptz, region text, country text,
    country_code text, operator text, brand text, attrs jsonb NOT NULL,
    err text, identity_hash text, row_hash text
) ON COMMIT DROP
"""

MM_TODAY = """
CREATE TEMP TABLE mm_today ON COMMIT DROP AS
SELECT DISTINCT ON (mcc, mnc) mcc, mnc, country, country_code, region, operator, brand
FROM mcc_mnc_map
WHERE (valid_from IS NULL OR valid_from <= %(day)s) AND (valid_to IS NULL OR %(day)s < valid_to)
ORDER BY mcc, mnc, source LIKE 'builtin:%%', valid_from DESC NULLS LAST, id DESC
"""


def _qi(name: str) -> str:
    """quote_ident for SQL that is run with parameters (where % must be doubled)."""
    return quote_ident(name).replace("%", "%%")


def _attrs_expr(extra: list[str]) -> str:
    if not extra:
        return "'{}'::jsonb"
    parts = []
    for i in range(0, len(extra), 40):  # jsonb_build_object takes at most 100 arguments
        args = ", ".join(f"{_lit(c)}, r.{_qi(c)}" for c in extra[i:i + 40])
        parts.append(f"jsonb_build_object({args})")
    return f"jsonb_strip_nulls({' || '.join(parts)})"


def _lit(text: str) -> str:
    """A string literal for text we control or that comes from a source's header row."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def stage_insert_sql(cfg: SourceConfig, raw_table: str, source_columns: list[str],
                     mapped_kinds: set[str]) -> tuple[str, dict[str, Any]]:
    """The INSERT that normalises one source's raw table into `stage`.

    Args:
        cfg: the source; its `columns` and `constants` say where each canonical field comes from.
        raw_table: the temp table holding the source's text columns.
        source_columns: the columns present in the raw table.
        mapped_kinds: name_map kinds that have at least one alias (others are not joined).

    Returns:
        SQL with named parameters, and the parameters (`src_rank` and `source` are the caller's).
    """
    colmap = cfg.column_map
    consts = cfg.constant_map
    params: dict[str, Any] = {}
    cleaned = []
    for f in CANONICAL_FIELDS:
        if f in colmap:
            expr = f"r.{_qi(colmap[f])}"  # cleaned in Arrow before COPY (stage.clean_strings)
        elif f in consts:
            # NUL cannot be stored (PostgreSQL text); readers strip it from cells alike.
            params[f"const_{f}"] = clean(consts[f].replace("\x00", "")) or None
            expr = f"%(const_{f})s::text"
        else:
            expr = "NULL::text"
        cleaned.append(f"{expr} AS {f}")
    mapped = set(colmap.values())
    extra = [c for c in source_columns if c not in mapped]
    cleaned.append(f"{_attrs_expr(extra)} AS attrs")

    def mapped_name(field: str, expr: str, alias: str) -> tuple[str, str]:
        if field not in mapped_kinds:
            return expr, ""
        join = (f"LEFT JOIN name_map {alias} ON {alias}.kind = '{field}' "
                f"AND {alias}.alias_key = name_key({expr})")
        return f"coalesce({alias}.canonical, {expr})", join

    g_expr, g_join = mapped_name("feature_group", "c.feature_group", "ng")
    n_expr, n_join = mapped_name("feature_name", "c.feature_name", "nn")
    s_expr, s_join = mapped_name("status", "c.status", "ns")
    o_expr, o_join = mapped_name("operator", "coalesce(c.operator, mm.operator)", "no")
    joins = "\n".join(j for j in (g_join, n_join, s_join, o_join) if j)

    errs = []
    for f in ordered_identity(list(cfg.identity)):
        where = f" (column {colmap[f]!r})" if f in colmap else ""
        errs.append(f"WHEN m.{f} IS NULL THEN {_lit('missing identity field ' + f + where)}")
    errs.append("WHEN m.feature_group IS NULL THEN 'missing feature_group'")
    errs.append(f"WHEN m.feature_group !~ '{GROUP_RE}' THEN 'feature_group ' || quote_literal(m.feature_group) "
                "|| ' must be 1-64 letters, digits, ''_'', ''.'', ''-'' (map it with name_map)'")
    for f in ordered_identity(list(cfg.identity)):
        errs.append(f"WHEN m.{f} ~ '[[:cntrl:]]' THEN 'identity field {f} contains a control character'")
    errs.append("WHEN m.mcc !~ '^[0-9]{3}$' THEN 'MCC ' || quote_literal(m.mcc) || ' is not 3 digits'")
    errs.append("WHEN m.mnc !~ '^[0-9]{2,3}$' THEN 'MNC ' || quote_literal(m.mnc) || ' is not 2-3 digits'")
    errs.append("WHEN m.ts_raw IS NOT NULL AND m.source_updated_at IS NULL THEN "
                "'source_updated_at ' || quote_literal(m.ts_raw) || ' is not a date/time "
                "(expected YYYY-MM-DD[ HH:MM[:SS]][+HH:MM])'")
    err_case = "CASE " + " ".join(errs) + " END"

    ident = " || E'\\x1f' || ".join(
        f"'{f}' || E'\\x1e' || v.{f}" for f in ordered_identity(list(cfg.identity)))
    state = ", ".join(f"v.{f}" for f in STATE_FIELDS)
    # Time stamps enter the row hash as epoch seconds, so it does not depend on the session zone.
    row_state = ", ".join(f"extract(epoch FROM v.{f})" if f == "source_updated_at" else f"v.{f}"
                          for f in STATE_FIELDS)
    cols = ", ".join(STATE_FIELDS)
    sql = f"""
INSERT INTO stage (src_rank, row_no, {cols}, err, identity_hash, row_hash)
SELECT v.src_rank, v.row_no, {state}, v.err,
    CASE WHEN v.err IS NULL THEN encode(sha256(convert_to({ident}, 'UTF8')), 'hex') END,
    CASE WHEN v.err IS NULL THEN md5(ROW({row_state})::text) END
FROM (
    SELECT m.*, {err_case} AS err
    FROM (
        SELECT %(src_rank)s::int AS src_rank, %(source)s::text AS source, c.row_no,
            {g_expr} AS feature_group, {n_expr} AS feature_name, c.mcc, c.mnc,
            {s_expr} AS status, c.value, c.owner, c.notes, c.source_updated_at AS ts_raw,
            try_timestamptz(c.source_updated_at) AS source_updated_at,
            mm.region, mm.country, mm.country_code, {o_expr} AS operator, mm.brand, c.attrs
        FROM (
            SELECT r.{_qi(ROW_COLUMN)} AS row_no, {', '.join(cleaned)}
            FROM {_qi(raw_table)} r
            OFFSET 0  -- a fence: each expression is computed once per row, not per reference
        ) c
        LEFT JOIN mm_today mm ON mm.mcc = c.mcc AND mm.mnc = c.mnc
        {joins}
        OFFSET 0
    ) m
    OFFSET 0
) v
"""
    return sql, params
