"""Operations: 'skipped' runs, the scheduler's persisted fire times, SLA definitions and violations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# runs: a trigger that finds a sync running is recorded as 'skipped' (not queued); a failed
# attempt that the scheduler retried is flagged so the success-rate SLA counts each trigger once.
#
# scheduler_state: one row per schedule job (sync-cron, sync-interval) with the time of the last
# fire that was handled. On start the scheduler compares it with the schedule: if a fire was
# due in between (the service was down), it runs exactly one catch-up sync.
#
# sla_definitions are data, so admins change thresholds without a deploy; the unique partial
# index on sla_violations keeps at most one open violation per SLA, which is what makes
# "one alert per violation" hold even when two processes evaluate at the same time.
STATEMENTS = """
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'skipped'));
ALTER TABLE runs ADD COLUMN retried boolean NOT NULL DEFAULT false;

CREATE TABLE scheduler_state (
    job_id          text PRIMARY KEY,
    last_fire_at    timestamptz NOT NULL,
    last_run_id     bigint,
    last_outcome    text,
    host            text,
    pid             integer,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sla_definitions (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z0-9_.-]{1,64}$'),
    kind            text NOT NULL
                    CHECK (kind IN ('freshness', 'daily_deadline', 'success_rate', 'api_p95')),
    enabled         boolean NOT NULL DEFAULT true,
    threshold       double precision,
    deadline        time,
    window_days     integer CHECK (window_days IS NULL OR window_days BETWEEN 1 AND 366),
    min_samples     integer NOT NULL DEFAULT 20 CHECK (min_samples >= 1),
    description     text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'freshness' OR threshold > 0),
    CHECK (kind <> 'daily_deadline' OR deadline IS NOT NULL),
    CHECK (kind <> 'success_rate' OR (threshold BETWEEN 0 AND 1 AND window_days IS NOT NULL)),
    CHECK (kind <> 'api_p95' OR threshold > 0)
);

INSERT INTO sla_definitions (name, kind, threshold, deadline, window_days, description) VALUES
    ('freshness', 'freshness', 26, NULL, NULL,
     'the last successful sync finished less than threshold hours ago'),
    ('daily_deadline', 'daily_deadline', NULL, '07:00', NULL,
     'today''s sync (in the configured time zone) succeeded by the deadline'),
    ('success_rate', 'success_rate', 0.98, NULL, 30,
     'share of syncs that succeeded (or were partial) over the last window_days days'),
    ('api_p95', 'api_p95', 3.0, NULL, NULL,
     'p95 latency in seconds of every v1 API route with at least min_samples recent requests');

CREATE TABLE sla_violations (
    id              bigserial PRIMARY KEY,
    sla_name        text NOT NULL,
    kind            text NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_at       timestamptz,
    observed        double precision,
    threshold       double precision,
    detail          text NOT NULL,
    close_detail    text,
    alerted_at      timestamptz,
    alert_attempts  integer NOT NULL DEFAULT 0,
    alert_error     text,
    resolved_alerted_at timestamptz
);
CREATE UNIQUE INDEX sla_violations_one_open_idx ON sla_violations (sla_name)
    WHERE closed_at IS NULL;
CREATE INDEX sla_violations_opened_idx ON sla_violations (opened_at DESC)
"""


def upgrade() -> None:
    for statement in STATEMENTS.split(";\n"):
        if statement.strip():
            op.execute(text(statement))


def downgrade() -> None:
    for name in ("sla_violations", "sla_definitions", "scheduler_state"):
        op.execute(text(f"DROP TABLE IF EXISTS {name}"))
    op.execute(text("DELETE FROM runs WHERE status = 'skipped'"))
    op.execute(text("ALTER TABLE runs DROP COLUMN IF EXISTS retried"))
    op.execute(text("ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_status_check"))
    op.execute(text("ALTER TABLE runs ADD CONSTRAINT runs_status_check "
                    "CHECK (status IN ('running', 'succeeded', 'partial', 'failed'))"))
