"""reading claims (issue 17 item 3)

Revision ID: 0013_reading
Revises: 0016_external_studies
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_reading"
down_revision = "0016_external_studies"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reading_claim",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, index=True),
        sa.Column("claimed_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reading_claim")
