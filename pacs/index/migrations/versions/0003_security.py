"""accounts, API tokens and the audit trail (issue 5)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "api_token",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column(
            "account_pk",
            sa.Integer(),
            sa.ForeignKey("account.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_id", sa.String(32), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("last_used_at", TZ, nullable=True),
    )
    op.create_table(
        "audit_event",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(256), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "share_grant",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("grant_id", sa.String(32), nullable=False, unique=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("pin_hash", sa.String(256), nullable=True),
        sa.Column("failed_pins", sa.Integer(), nullable=False),
    )
    op.create_index("ix_share_grant_study_uid", "share_grant", ["study_uid"])
    op.create_index("ix_audit_event_patient", "audit_event", ["patient_id"])
    op.create_index("ix_audit_event_study", "audit_event", ["study_uid"])


def downgrade() -> None:
    op.drop_table("share_grant")
    op.drop_table("audit_event")
    op.drop_table("api_token")
    op.drop_table("account")
