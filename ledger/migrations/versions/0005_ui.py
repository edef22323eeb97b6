"""Explorer: page views per day, client address and page (the adoption KPI, weekly active users).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# One row per (day, client address, page); the explorer buffers views in memory and adds its
# counts in batches (views = views + n), so a burst of users costs one statement per flush and
# the explorer keeps working while PostgreSQL is down.
STATEMENTS = """
CREATE TABLE ui_page_views (
    day             date NOT NULL,
    client          text NOT NULL CHECK (btrim(client) <> ''),
    page            text NOT NULL CHECK (btrim(page) <> ''),
    views           bigint NOT NULL CHECK (views > 0),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, client, page)
);
CREATE INDEX ui_page_views_client_idx ON ui_page_views (client, day)
"""


def upgrade() -> None:
    for statement in STATEMENTS.split(";\n"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    op.execute(text("DROP TABLE IF EXISTS ui_page_views"))
