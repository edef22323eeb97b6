"""Incidents (the KPI "Sev-2 at most 1 a month"): a ledger outage, a sync failing past its
retries, a stale snapshot; each with start, end and so duration.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STATEMENTS = """
CREATE TABLE incidents (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('ledger', 'sync', 'stale')),
    key             text NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_at       timestamptz,
    detail          text NOT NULL,
    close_detail    text,
    CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
CREATE UNIQUE INDEX incidents_open_key ON incidents (kind, key) WHERE closed_at IS NULL;
CREATE INDEX incidents_opened_idx ON incidents (opened_at)
"""


def upgrade() -> None:
    for statement in STATEMENTS.split(";\n"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    op.execute(text("DROP TABLE IF EXISTS incidents"))
