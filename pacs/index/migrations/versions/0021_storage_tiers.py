"""storage tiers: the blobs moved to the cold tier (issue 20 item 3)

Revision ID: 0021_storage_tiers
Revises: 0020_stats_summary
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_storage_tiers"
down_revision = "0020_stats_summary"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cold_blob",
        sa.Column("blob_key", sa.String(256), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cold_blob")
