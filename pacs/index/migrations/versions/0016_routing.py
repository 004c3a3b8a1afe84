"""routing rules, DICOMweb destinations, the per-destination outbox, remote retrievals (issues 18, 19)

Revision ID: 0016_routing
Revises: 0011_mpps
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_routing"
down_revision = "0011_mpps"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "routing_endpoint",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("auth", sa.String(16), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "routing_rule",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("calling_ae", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(64), nullable=False),
        sa.Column("body_part", sa.String(64), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("window_start", sa.String(5), nullable=False),
        sa.Column("window_end", sa.String(5), nullable=False),
        sa.Column("destination", sa.String(80), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "routing_send",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("destination", sa.String(80), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False, index=True),
        sa.Column("sop_uids", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(160), nullable=False),
        sa.Column("dedup", sa.String(256), nullable=True, unique=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_routing_send_lane", "routing_send", ["destination", "state", "priority"])
    op.create_table(
        "routing_lane",
        sa.Column("destination", sa.String(80), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("lease_expires", TZ, nullable=True),
    )
    op.create_table(
        "remote_retrieve",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("ae_title", sa.String(16), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("warning", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("remote_retrieve")
    op.drop_table("routing_lane")
    op.drop_index("ix_routing_send_lane", table_name="routing_send")
    op.drop_table("routing_send")
    op.drop_table("routing_rule")
    op.drop_table("routing_endpoint")
