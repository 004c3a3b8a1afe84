"""patient merges and splits, IOCM rejections, exports (issue 18 items 3-5)

Revision ID: 0015_datalife
Revises: 0012_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_datalife"
down_revision = "0012_reports"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "patient_move",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False, index=True),
        sa.Column("source_issuer", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False, index=True),
        sa.Column("target_issuer", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("studies", sa.Text(), nullable=False),
        sa.Column("added", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("moved_by", sa.String(128), nullable=False),
        sa.Column("moved_at", TZ, nullable=False),
        sa.Column("undone_by", sa.String(128), nullable=False),
        sa.Column("undone_at", TZ, nullable=True),
    )
    op.create_table(
        "export",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("media", sa.String(16), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("studies", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
    )
    with op.batch_alter_table("deletion") as batch:
        batch.add_column(
            sa.Column("rejection_code", sa.String(16), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("rejection_note_uid", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("deletion") as batch:
        batch.drop_column("rejection_note_uid")
        batch.drop_column("rejection_code")
    op.drop_table("export")
    op.drop_table("patient_move")
