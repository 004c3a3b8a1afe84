"""objects as received, kept beside the corrected copies that retrieval serves (issue 14)

Revision ID: 0009_corrected_copies
Revises: 0008_content_hash
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_corrected_copies"
down_revision = "0008_content_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_original",
        sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
        sa.Column("blob_key", sa.String(256), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("applied", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("instance_original")
