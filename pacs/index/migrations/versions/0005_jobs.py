"""jobs queue, change feed and study-stable bookkeeping (issue 14)

Revision ID: 0005_jobs
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_jobs"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_after", TZ, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_expires", TZ, nullable=True),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("dedup_key", sa.String(256), nullable=True, unique=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_job_state_run_after", "job", ["state", "run_after"])
    op.create_index("ix_job_kind", "job", ["kind"])
    op.create_table(
        "change",
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_change_study_uid", "change", ["study_uid"])
    op.create_table(
        "study_stable",
        sa.Column(
            "study_pk",
            sa.Integer(),
            sa.ForeignKey("study.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("updated_at", TZ, nullable=False),
    )
    # Studies already held count as stable: the first scheduler after the upgrade must not
    # fire study-stable (and its subscribers' jobs, a forward of everything) for the archive.
    op.execute("INSERT INTO study_stable (study_pk, updated_at) SELECT pk, updated_at FROM study")


def downgrade() -> None:
    op.drop_table("study_stable")
    op.drop_table("change")
    op.drop_table("job")
