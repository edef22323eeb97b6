"""Deploys and smoke tests in the ledger, for `fmw status` (last deploy, last smoke).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op
from sqlalchemy import text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATEMENTS = """
CREATE TABLE deploys (
    id              bigserial PRIMARY KEY,
    version         text NOT NULL,
    host            text NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome         text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    rolled_back     boolean NOT NULL DEFAULT false,
    detail          text
);
CREATE TABLE smoke_runs (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    host            text NOT NULL,
    url             text NOT NULL,
    ok              boolean NOT NULL,
    failed          text
)
"""


def upgrade() -> None:
    for statement in STATEMENTS.split(";\n"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    op.execute(text("DROP TABLE IF EXISTS smoke_runs"))
    op.execute(text("DROP TABLE IF EXISTS deploys"))
