"""Personal API tokens (issue 14): made by a signed-in user for programs, stored hashed; the
audit log records the signed-in user (subject and name) of a call; the role map entries admins
edit in the Dev page (added to the config's [[auth.roles]]).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from alembic import op
from sqlalchemy import text

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATEMENTS = """
CREATE TABLE personal_tokens (
    id              bigserial PRIMARY KEY,
    prefix          text NOT NULL UNIQUE,
    token_hash      text NOT NULL,
    subject         text NOT NULL,
    user_name       text NOT NULL,
    name            text NOT NULL,
    role            text NOT NULL CHECK (role IN ('viewer', 'scoped')),
    scope_json      jsonb,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    CHECK ((role = 'scoped') = (scope_json IS NOT NULL))
);
CREATE INDEX personal_tokens_subject_idx ON personal_tokens (subject);
ALTER TABLE audit_log ADD COLUMN subject text, ADD COLUMN user_name text;
CREATE TABLE role_map (
    position        integer PRIMARY KEY,
    rule            jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def upgrade() -> None:
    for statement in STATEMENTS.split(";\n"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    op.execute(text("ALTER TABLE audit_log DROP COLUMN IF EXISTS subject, "
                    "DROP COLUMN IF EXISTS user_name"))
    op.execute(text("DROP TABLE IF EXISTS personal_tokens"))
    op.execute(text("DROP TABLE IF EXISTS role_map"))
