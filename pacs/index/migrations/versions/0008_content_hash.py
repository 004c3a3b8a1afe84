"""instance.content_sha256: duplicates judged by the dataset, not the file meta (issue 22)

The same object sent by C-STORE and again by STOW-RS or ``pacs import``
differs only in group 0002, which each door writes its own way. The new
column holds the SHA-256 of the bytes after the file meta group, computed by
ingest as the object streams in.

Existing rows are not backfilled here: that would read every blob of the
archive during an upgrade (hours on a large store, and the migration does not
know the store). They keep NULL, and ingest fills a row's hash the first time
a resend of its SOP Instance UID differs in the whole-file hash, by reading
that one stored blob once (``Ingestor._content_hash_of``). Identical resends
still match on the whole-file hash without any read.

Revision ID: 0008_content_hash
Revises: 0007_lifecycle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_content_hash"
down_revision = "0007_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table copy on SQLite): instant on a large index.
    op.add_column("instance", sa.Column("content_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("content_sha256")
