"""HTTP API: the address allow list, dev API keys (hashed) and the hash-chained audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op
from sqlalchemy import text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# audit_log.seq is gapless (1, 2, 3, ...) and covered by each row's hash together with the
# previous row's hash, so editing or deleting a row breaks the chain; audit_head holds the
# newest seq/hash so that cutting rows off the end is detected as well.
TABLES = """
CREATE TABLE allow_list (
    cidr            cidr PRIMARY KEY,
    role            text NOT NULL CHECK (role IN ('user', 'admin')),
    note            text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (btrim(name) <> ''),
    prefix          text NOT NULL UNIQUE,
    key_hash        text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);

CREATE TABLE audit_log (
    seq             bigint PRIMARY KEY CHECK (seq > 0),
    at              timestamptz NOT NULL,
    client          text NOT NULL,
    key_id          bigint,
    method          text NOT NULL,
    path            text NOT NULL,
    query           text NOT NULL,
    status          integer NOT NULL,
    detail          text,
    prev_hash       text NOT NULL,
    hash            text NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log USING brin (at);

CREATE TABLE audit_head (
    id              integer PRIMARY KEY CHECK (id = 1),
    seq             bigint NOT NULL,
    hash            text NOT NULL
)
"""


def upgrade() -> None:
    for statement in TABLES.split(";"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    for name in ("audit_head", "audit_log", "api_keys", "allow_list"):
        op.execute(text(f"DROP TABLE IF EXISTS {name}"))
