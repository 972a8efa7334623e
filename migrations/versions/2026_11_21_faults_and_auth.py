"""api keys and job owners, idempotency keys, run heartbeats and hand-backs

Revision ID: 20261121_0003
Revises: 20261121_0002
Create Date: 2026-11-21 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261121_0003"
down_revision: str | None = "20261121_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("admin", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_sha256", name=op.f("uq_api_keys_key_sha256")),
    )
    op.create_index(op.f("ix_api_keys_owner"), "api_keys", ["owner"])
    op.add_column("jobs", sa.Column("owner", sa.String(200), server_default="", nullable=False))
    op.add_column("jobs", sa.Column("idempotency_key", sa.String(200), nullable=True))
    op.add_column("jobs", sa.Column("request_sha256", sa.String(64), nullable=True))
    op.create_index(op.f("ix_jobs_owner"), "jobs", ["owner"])
    op.create_unique_constraint(
        op.f("uq_jobs_owner_idempotency_key"), "jobs", ["owner", "idempotency_key"]
    )
    op.add_column("runs", sa.Column("handbacks", sa.Integer(), server_default="0", nullable=False))
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "heartbeat_at")
    op.drop_column("runs", "handbacks")
    op.drop_constraint(op.f("uq_jobs_owner_idempotency_key"), "jobs", type_="unique")
    op.drop_index(op.f("ix_jobs_owner"), table_name="jobs")
    op.drop_column("jobs", "request_sha256")
    op.drop_column("jobs", "idempotency_key")
    op.drop_column("jobs", "owner")
    op.drop_index(op.f("ix_api_keys_owner"), table_name="api_keys")
    op.drop_table("api_keys")
