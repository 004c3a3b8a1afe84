"""modality performed procedure steps (issue 16, MPPS)

Revision ID: 0011_mpps
Revises: 0010_workflow
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_mpps"
down_revision = "0010_workflow"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "performed_step",
        sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("accession_number", sa.String(16), nullable=False, index=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("station_ae", sa.String(16), nullable=False),
        sa.Column("performed_series", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("performed_step")
