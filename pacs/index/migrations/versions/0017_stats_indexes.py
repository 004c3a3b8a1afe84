"""indexes for the statistics (issue 20 item 1): arrival times, share links, audit actions

Revision ID: 0017_stats_indexes
Revises: 0016_routing

The statistics group instances by arrival day and studies by first arrival; a
range of one month reads only that month through these. On PostgreSQL the
instance index also carries the columns the reports sum and group by (size,
series, sending AE), so a whole-year report is an index-only scan.
"""

from __future__ import annotations

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


def downgrade() -> None:
    op.drop_index("ix_audit_event_action_at", "audit_event")
    op.drop_index("ix_share_grant_created_at", "share_grant")
    op.drop_index("ix_study_created_at", "study")
    op.drop_index("ix_instance_received_at", "instance")
