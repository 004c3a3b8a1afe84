"""reports, templates (seeded), saved phrases, signing certificates, reading times (issue 17)

Revision ID: 0012_reports
Revises: 0017_stats_indexes
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from pacs.reports.defaults import DEFAULT_TEMPLATES

revision = "0012_reports"
down_revision = "0017_stats_indexes"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "report",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("study_uid", sa.String(64), nullable=False, index=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(24), nullable=False, index=True),
        sa.Column("amends_pk", sa.Integer(), sa.ForeignKey("report.pk"), nullable=True, index=True),
        sa.Column("template_pk", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("conclusion", sa.Text(), nullable=False),
        sa.Column("recommendations", sa.Text(), nullable=False),
        sa.Column("key_images", sa.Text(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("signer", sa.String(64), nullable=False),
        sa.Column("signer_code", sa.String(64), nullable=False),
        sa.Column("signed_at", TZ, nullable=True),
        sa.Column("cert_subject", sa.String(512), nullable=False),
        sa.Column("cert_serial", sa.String(128), nullable=False),
        sa.Column("cert_sha256", sa.String(64), nullable=False),
        sa.Column("approver", sa.String(64), nullable=False),
        sa.Column("approved_at", TZ, nullable=True),
        sa.Column("sr_uid", sa.String(64), nullable=False),
        sa.Column("pdf_uid", sa.String(64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
    )
    templates = op.create_table(
        "report_template",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False, index=True),
        sa.Column("body_part", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("conclusion", sa.Text(), nullable=False),
        sa.Column("recommendations", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "report_phrase",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.UniqueConstraint("username", "name", name="uq_report_phrase"),
    )
    op.create_table(
        "signing_certificate",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("pkcs12", sa.LargeBinary(), nullable=True),
        sa.Column("token_label", sa.String(64), nullable=False),
        sa.Column("key_label", sa.String(64), nullable=False),
        sa.Column("professional_code", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("serial", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("not_after", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "reading_times",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("acquired_at", TZ, nullable=True),
        sa.Column("first_opened_at", TZ, nullable=True),
        sa.Column("first_opened_by", sa.String(64), nullable=False),
        sa.Column("draft_at", TZ, nullable=True),
        sa.Column("signed_at", TZ, nullable=True),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        templates,
        [
            {**template, "language": "vi", "updated_by": "seed", "updated_at": now}
            for template in DEFAULT_TEMPLATES
        ],
    )


def downgrade() -> None:
    for table in ("reading_times", "signing_certificate", "report_phrase"):
        op.drop_table(table)
    op.drop_table("report_template")
    op.drop_table("report")
