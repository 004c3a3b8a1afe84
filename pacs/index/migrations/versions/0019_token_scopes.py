"""SMART scopes on API tokens (issue 19 item 1)

Revision ID: 0019_token_scopes
Revises: 0018_credential_failures

A token issued to a client app by ``POST /fhir/auth/token`` carries the SMART scopes it
was granted (space-separated); NULL, every token made before, acts with its account's role.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_token_scopes"
down_revision = "0018_credential_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_token", sa.Column("scopes", sa.String(1000), nullable=True))


def downgrade() -> None:
    op.drop_column("api_token", "scopes")
