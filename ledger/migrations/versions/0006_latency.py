"""API latency per minute, route and process (the v1 p95 KPI across restarts and processes).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from alembic import op
from sqlalchemy import text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Each API process adds what it served in one minute: request and error counts, total time and
# a histogram over fixed bucket bounds (ledger.latency.BUCKETS_MS). Histograms add up across
# processes and minutes, so a p95 over any window is read from their sum.
STATEMENTS = """
CREATE TABLE api_latency (
    minute      timestamptz NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    method      text NOT NULL,
    route       text NOT NULL,
    requests    bigint NOT NULL CHECK (requests >= 0),
    errors      bigint NOT NULL CHECK (errors >= 0),
    total_ms    double precision NOT NULL,
    buckets     bigint[] NOT NULL,
    PRIMARY KEY (minute, host, pid, method, route)
);
CREATE INDEX api_latency_route_idx ON api_latency (route, minute)
"""


def upgrade() -> None:
    for statement in STATEMENTS.split(";\n"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    op.execute(text("DROP TABLE IF EXISTS api_latency"))
