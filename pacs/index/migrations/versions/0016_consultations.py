"""consultations between facilities (issue 19 item 4)

Revision ID: 0016_consultations
Revises: 0015_datalife
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_consultations"
down_revision = "0015_datalife"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consultation",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False, index=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(8), nullable=False),
        sa.Column("facility", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(128), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("send_id", sa.Integer(), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("reply_url", sa.String(512), nullable=True),
        sa.Column("remote_id", sa.Integer(), nullable=True),
        sa.Column("reply_secret", sa.String(128), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index(
        "ux_consultation_origin", "consultation", ["reply_url", "remote_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_consultation_origin", table_name="consultation")
    op.drop_table("consultation")
