"""hardening (issue 15): patients a search returned, server-side web sessions, TOTP replay

Revision ID: 0009_security
Revises: 0006_config
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_security"
down_revision = "0006_config"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_patient",
        sa.Column(
            "event_pk",
            sa.Integer(),
            sa.ForeignKey("audit_event.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("patient_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_audit_patient_patient", "audit_patient", ["patient_id"])
    op.create_table(
        "web_session",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False, unique=True),
        sa.Column("username", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
    )
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_column("totp_last_step")
    op.drop_table("web_session")
    op.drop_index("ix_audit_patient_patient", "audit_patient")
    op.drop_table("audit_patient")
