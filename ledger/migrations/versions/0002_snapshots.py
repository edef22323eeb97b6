"""Snapshot versions: one row per Parquet snapshot version, unique, with its status and manifest.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The version is the primary key, so two writers can never both publish the same version.
# Rows are only ever inserted as 'writing' and then moved to published/failed/deleted.
TABLES = """
CREATE TABLE snapshots (
    version         bigint PRIMARY KEY CHECK (version > 0),
    run_id          bigint,
    status          text NOT NULL CHECK (status IN ('writing', 'published', 'failed', 'deleted')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    rows            bigint,
    bytes           bigint,
    manifest        jsonb,
    error           text
);
CREATE INDEX snapshots_status_idx ON snapshots (status, version)
"""


def upgrade() -> None:
    for statement in TABLES.split(";"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    op.execute(text("DROP TABLE IF EXISTS snapshots"))
