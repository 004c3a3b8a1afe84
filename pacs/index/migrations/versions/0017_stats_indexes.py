"""indexes for the statistics (issue 20 item 1); compressed_instance (issue 20 item 3)

Revision ID: 0017_stats_indexes
Revises: 0016_routing

The statistics group instances by arrival day and studies by first arrival; a
range of one month reads only that month through these. On PostgreSQL the
instance index also carries the columns the reports sum and group by (size,
series, sending AE), so a whole-year report is an index-only scan.

``compressed_instance`` keeps, for an image stored compressed losslessly, the hash,
size and transfer syntax it was received with.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_stats_indexes"
down_revision = "0016_routing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_instance_received_at",
        "instance",
        ["received_at"],
        postgresql_include=["size", "series_pk", "source_ae"],
    )
    op.create_index("ix_study_created_at", "study", ["created_at"])
    op.create_index("ix_share_grant_created_at", "share_grant", ["created_at"])
    op.create_index("ix_audit_event_action_at", "audit_event", ["action", "at"])
    op.create_table(
        "compressed_instance",
        sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
        sa.Column("original_transfer_syntax_uid", sa.String(64), nullable=False),
        sa.Column("original_sha256", sa.String(64), nullable=False),
        sa.Column("original_size", sa.BigInteger(), nullable=False),
        sa.Column("compressed_size", sa.BigInteger(), nullable=False),
        sa.Column("compressed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("compressed_instance")
    op.drop_index("ix_audit_event_action_at", "audit_event")
    op.drop_index("ix_share_grant_created_at", "share_grant")
    op.drop_index("ix_study_created_at", "study")
    op.drop_index("ix_instance_received_at", "instance")
