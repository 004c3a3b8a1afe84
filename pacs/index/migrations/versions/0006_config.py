"""runtime configuration: remote AEs, allowed calling AEs, config version (issue 14)

Revision ID: 0006_config
Revises: 0009_corrected_copies
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_config"
down_revision = "0009_corrected_copies"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "remote_ae",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("ae_title", sa.String(16), nullable=False, unique=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("services", sa.String(64), nullable=False),
        sa.Column("charset_fallback", sa.String(64), nullable=True),
        sa.Column("charset_profile", sa.String(8), nullable=False),
        sa.Column("tls_required", sa.Boolean(), nullable=False),
        sa.Column("tls_identity", sa.String(255), nullable=True),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "allowed_calling_ae",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("ae_title", sa.String(16), nullable=False, unique=True),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "config_version",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.execute("INSERT INTO config_version (pk, version) VALUES (1, 1)")


def downgrade() -> None:
    op.drop_table("config_version")
    op.drop_table("allowed_calling_ae")
    op.drop_table("remote_ae")
