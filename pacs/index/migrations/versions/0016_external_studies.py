"""studies received from other facilities, their patient ID mapping (issue 19 item 6)

Revision ID: 0016_external_studies
Revises: 0016_consultations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_external_studies"
down_revision = "0016_consultations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "external_study",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(160), nullable=False),
        sa.Column("original_patient_id", sa.String(64), nullable=False),
        sa.Column("mapped_patient_id", sa.String(64), nullable=False),
        sa.Column("citizen_id", sa.String(64), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("external_study")
