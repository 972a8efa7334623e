"""epoch records: optimizer steps, and the (x, y) point of a race step

Revision ID: 20261121_0002
Revises: 20261121_0001
Create Date: 2026-11-21 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261121_0002"
down_revision: str | None = "20261121_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("epoch_metrics", sa.Column("steps", sa.BigInteger(), nullable=True))
    op.add_column("epoch_metrics", sa.Column("x", sa.Double(), nullable=True))
    op.add_column("epoch_metrics", sa.Column("y", sa.Double(), nullable=True))


def downgrade() -> None:
    op.drop_column("epoch_metrics", "y")
    op.drop_column("epoch_metrics", "x")
    op.drop_column("epoch_metrics", "steps")
