"""tuning: runs have a phase and a trial, may pause at a rung and end pruned

Revision ID: 20261122_0006
Revises: 20261122_0005
Create Date: 2026-11-22 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261122_0006"
down_revision: str | None = "20261122_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("phase", "trial", "waiting_at", "cleared_at")
OLD_STATUSES = ("queued", "running", "succeeded", "diverged", "failed", "cancelled")


def upgrade() -> None:
    # ADD VALUE may run in a transaction (PostgreSQL 12+); the values are not used in it.
    op.execute("ALTER TYPE run_status ADD VALUE IF NOT EXISTS 'paused'")
    op.execute("ALTER TYPE run_status ADD VALUE IF NOT EXISTS 'pruned'")
    for column in COLUMNS:
        op.add_column("runs", sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    # The old schema knows neither state: a pruned run ended, cancelled; a paused one too.
    op.execute(
        "UPDATE runs SET status = 'cancelled', finished_at = coalesce(finished_at, now()), "
        "error = coalesce(error, 'stopped by a tuning decision (' || status || ')') "
        "WHERE status IN ('paused', 'pruned')"
    )
    for column in reversed(COLUMNS):
        op.drop_column("runs", column)
    values = ", ".join(f"'{v}'" for v in OLD_STATUSES)
    op.execute("ALTER TYPE run_status RENAME TO run_status_old")
    op.execute(f"CREATE TYPE run_status AS ENUM ({values})")
    op.execute("ALTER TABLE runs ALTER COLUMN status DROP DEFAULT")
    op.execute(
        "ALTER TABLE runs ALTER COLUMN status TYPE run_status USING status::text::run_status"
    )
    op.execute("DROP TYPE run_status_old")
