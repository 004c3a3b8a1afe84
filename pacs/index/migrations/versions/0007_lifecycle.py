"""study lifecycle: deletions awaiting purge, legal holds, correction versions (issue 14)

Revision ID: 0007_lifecycle
Revises: 0005_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_lifecycle"
down_revision = "0005_jobs"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
UID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "deletion",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("series_uid", UID, nullable=False),
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("patient_name", sa.String(324), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deleted_by", sa.String(128), nullable=False),
        sa.Column("deleted_at", TZ, nullable=False),
        sa.Column("purge_after", TZ, nullable=False),
        sa.Column("purged_at", TZ, nullable=True),
    )
    op.create_index("ix_deletion_study_uid", "deletion", ["study_uid"])
    op.create_index("ix_deletion_purge_after", "deletion", ["purge_after"])
    op.create_table(
        "deleted_blob",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column(
            "deletion_pk",
            sa.Integer(),
            sa.ForeignKey("deletion.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("blob_key", sa.String(256), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_deleted_blob_deletion_pk", "deleted_blob", ["deletion_pk"])
    op.create_index("ix_deleted_blob_blob_key", "deleted_blob", ["blob_key"])
    op.create_table(
        "legal_hold",
        sa.Column("study_uid", UID, primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_by", sa.String(128), nullable=False),
        sa.Column("held_at", TZ, nullable=False),
    )
    op.create_table(
        "correction_version",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("corrected_by", sa.String(128), nullable=False),
        sa.Column("corrected_at", TZ, nullable=False),
        sa.UniqueConstraint("study_uid", "version", name="uq_correction_version"),
    )
    op.create_index("ix_correction_version_study_uid", "correction_version", ["study_uid"])
    op.create_table(
        "corrected_study",
        sa.Column("study_uid", UID, primary_key=True),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("corrected_study")
    op.drop_table("correction_version")
    op.drop_table("legal_hold")
    op.drop_table("deleted_blob")
    op.drop_table("deletion")
