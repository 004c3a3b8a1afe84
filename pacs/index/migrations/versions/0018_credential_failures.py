"""failed credential attempts shared by every node (issue 20 item 4)

Revision ID: 0018_credential_failures
Revises: 0013_reading

The login, user-name and share-PIN limiters counted failures in each
process's memory: behind a load balancer a guesser had the limit once per
node. Their counts are rows now, kept for the limiter's window.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_credential_failures"
down_revision = "0013_reading"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credential_failure",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_credential_failure_scope_key_at", "credential_failure", ["scope", "key", "at_ms"]
    )
    op.create_index("ix_credential_failure_at", "credential_failure", ["at_ms"])


def downgrade() -> None:
    op.drop_table("credential_failure")
