"""The ledger: features, changes, runs, run_errors, daily_counts, name_map, mcc_mnc_map.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op
from sqlalchemy import text

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Run ids in features and changes are not foreign keys on purpose: a row trigger per row would
# cost seconds on a million-row sync, and only the sync (in one transaction) writes them.
# changes is append-only with run_id and changed_at rising, so BRIN indexes fit them.
TABLES = """
CREATE TABLE runs (
    id              bigserial PRIMARY KEY,
    trigger         text NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    day             date NOT NULL,
    sources         text[] NOT NULL,
    rows_read       bigint NOT NULL DEFAULT 0,
    rows_bad        bigint NOT NULL DEFAULT 0,
    conflicts       bigint NOT NULL DEFAULT 0,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    deleted         bigint NOT NULL DEFAULT 0,
    unchanged       bigint NOT NULL DEFAULT 0,
    source_stats    jsonb NOT NULL DEFAULT '{}'::jsonb,
    phase_seconds   jsonb NOT NULL DEFAULT '{}'::jsonb,
    error_summary   text,
    host            text,
    pid             integer
);
CREATE INDEX runs_started_at_idx ON runs (started_at DESC);
CREATE INDEX runs_running_idx ON runs (id) WHERE status = 'running';

CREATE TABLE features (
    identity_hash     text PRIMARY KEY,
    row_hash          text NOT NULL,
    feature_group     text NOT NULL,
    feature_name      text,
    mcc               text,
    mnc               text,
    status            text,
    value             text,
    owner             text,
    notes             text,
    source            text NOT NULL,
    source_updated_at timestamptz,
    region            text,
    country           text,
    country_code      text,
    operator          text,
    brand             text,
    attrs             jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_run_id      bigint NOT NULL,
    first_seen_at     timestamptz NOT NULL,
    last_run_id       bigint NOT NULL,
    last_changed_at   timestamptz NOT NULL
);
CREATE INDEX features_group_name_idx ON features (feature_group, feature_name, mcc, mnc);
CREATE INDEX features_mcc_mnc_idx ON features (mcc, mnc);
CREATE INDEX features_source_idx ON features (source);
CREATE INDEX features_last_changed_idx ON features (last_changed_at);

CREATE TABLE changes (
    id              bigserial PRIMARY KEY,
    run_id          bigint NOT NULL,
    identity_hash   text NOT NULL,
    feature_group   text NOT NULL,
    op              char(1) NOT NULL CHECK (op IN ('C', 'U', 'D')),
    before_json     jsonb,
    after_json      jsonb,
    changed_fields  text[],
    changed_at      timestamptz NOT NULL,
    CHECK ((op = 'C' AND before_json IS NULL AND after_json IS NOT NULL)
        OR (op = 'U' AND before_json IS NOT NULL AND after_json IS NOT NULL)
        OR (op = 'D' AND before_json IS NOT NULL AND after_json IS NULL))
);
CREATE INDEX changes_run_idx ON changes USING brin (run_id);
CREATE INDEX changes_identity_idx ON changes (identity_hash, id);
CREATE INDEX changes_changed_at_idx ON changes USING brin (changed_at);
CREATE INDEX changes_group_changed_at_idx ON changes (feature_group, changed_at);

CREATE TABLE run_errors (
    id              bigserial PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES runs (id),
    source          text,
    row_no          bigint,
    kind            text NOT NULL CHECK (kind IN ('invalid', 'duplicate', 'conflict', 'source')),
    reason          text NOT NULL,
    identity_hash   text,
    raw             jsonb
);
CREATE INDEX run_errors_run_idx ON run_errors (run_id, source, row_no);

CREATE TABLE daily_counts (
    day             date PRIMARY KEY,
    created         bigint NOT NULL DEFAULT 0,
    updated         bigint NOT NULL DEFAULT 0,
    deleted         bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    runs            bigint NOT NULL DEFAULT 0,
    failed_runs     bigint NOT NULL DEFAULT 0
);

CREATE TABLE name_map (
    kind            text NOT NULL
                    CHECK (kind IN ('feature_group', 'feature_name', 'status', 'operator')),
    alias_key       text NOT NULL,
    alias           text NOT NULL,
    canonical       text NOT NULL CHECK (btrim(canonical) <> ''),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, alias_key)
);

CREATE TABLE mcc_mnc_map (
    id              bigserial PRIMARY KEY,
    mcc             text NOT NULL CHECK (mcc ~ '^[0-9]{3}$'),
    mnc             text NOT NULL CHECK (mnc ~ '^[0-9]{2,3}$'),
    country         text,
    country_code    text,
    region          text,
    operator        text,
    brand           text,
    status          text,
    valid_from      date,
    valid_to        date,
    source          text NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to)
);
CREATE INDEX mcc_mnc_map_pair_idx ON mcc_mnc_map (mcc, mnc, valid_from);
"""

# The alias key: NFC, trimmed, runs of white space folded to one space, lower case.
NAME_KEY = r"""
CREATE FUNCTION name_key(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN
    lower(regexp_replace(btrim(normalize(v, NFC), E' \t\r\n\u00a0\u3000'), '\s+', ' ', 'g'));
"""

# Source time stamps must be explicit dates: PostgreSQL would also accept words such as
# 'yesterday' or 'epoch'. The sync sets the session time zone to the configured one while it
# parses, so values without an offset are local time there.
TS_START = r"^\d{4}[-/.]\d"

# pg_input_is_valid (PostgreSQL 16+) checks without a sub-transaction per row.
TRY_TS_16 = f"""
CREATE FUNCTION try_timestamptz(v text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE RETURN
    CASE WHEN v ~ '{TS_START}' AND pg_input_is_valid(v, 'timestamptz') THEN v::timestamptz END;
"""
TRY_TS_OLD = f"""
CREATE FUNCTION try_timestamptz(v text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF v !~ '{TS_START}' THEN
        RETURN NULL;
    END IF;
    RETURN v::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    bind = op.get_bind()
    for statement in TABLES.split(";"):
        if statement.strip():
            op.execute(text(statement))
    op.execute(text(NAME_KEY))
    version = int(bind.execute(text("SHOW server_version_num")).scalar_one())
    op.execute(text(TRY_TS_16 if version >= 160000 else TRY_TS_OLD))


def downgrade() -> None:
    for name in ("mcc_mnc_map", "name_map", "daily_counts", "run_errors", "changes", "features",
                 "runs"):
        op.execute(text(f"DROP TABLE IF EXISTS {name}"))
    op.execute(text("DROP FUNCTION IF EXISTS name_key(text)"))
    op.execute(text("DROP FUNCTION IF EXISTS try_timestamptz(text)"))
