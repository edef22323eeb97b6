"""Data problems as open items: a bad row is open from the run that first saw it until a run
of its source no longer delivers it (issue 13: the same 8 bad rows were counted every day).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = """
CREATE TABLE data_problems (
    id              bigserial PRIMARY KEY,
    source          text NOT NULL,
    key             text NOT NULL,
    kind            text NOT NULL,
    reason          text NOT NULL,
    identity_hash   text,
    raw             jsonb,
    first_run_id    bigint NOT NULL,
    last_run_id     bigint NOT NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    fixed_run_id    bigint,
    fixed_at        timestamptz
);
CREATE UNIQUE INDEX data_problems_open_key ON data_problems (source, key) WHERE fixed_at IS NULL;
CREATE INDEX data_problems_fixed_idx ON data_problems (fixed_at)
"""


def upgrade() -> None:
    for statement in STATEMENTS.split(";\n"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    op.execute(text("DROP TABLE IF EXISTS data_problems"))
