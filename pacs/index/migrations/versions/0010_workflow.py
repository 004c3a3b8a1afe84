"""hospital workflow: HL7 messages, HIS patients, orders, scheduled steps, study-order links (issue 16)

Revision ID: 0010_workflow
Revises: 0009_security
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_workflow"
down_revision = "0009_security"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hl7_message",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("received_at", TZ, nullable=False, index=True),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("sending_app", sa.String(64), nullable=False),
        sa.Column("sending_facility", sa.String(64), nullable=False),
        sa.Column("control_id", sa.String(64), nullable=True),
        sa.Column("accepted_id", sa.String(64), nullable=True),
        sa.Column("message_type", sa.String(16), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("ack_code", sa.String(2), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("ack", sa.Text(), nullable=False),
        sa.UniqueConstraint(
            "sending_app", "sending_facility", "accepted_id", name="uq_hl7_message_accepted"
        ),
    )
    op.create_table(
        "his_patient",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("citizen_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(324), nullable=False),
        sa.Column("name_folded", sa.String(324), nullable=False, index=True),
        sa.Column("birth_date", sa.String(8), nullable=False),
        sa.Column("sex", sa.String(16), nullable=False),
        sa.Column(
            "merged_into", sa.Integer(), sa.ForeignKey("his_patient.pk"), nullable=True, index=True
        ),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("patient_id", "issuer", name="uq_his_patient"),
    )
    op.create_table(
        "imaging_order",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("accession_number", sa.String(16), nullable=False, unique=True),
        sa.Column("placer_number", sa.String(64), nullable=False),
        sa.Column("filler_number", sa.String(64), nullable=False),
        sa.Column(
            "patient_pk", sa.Integer(), sa.ForeignKey("his_patient.pk"), nullable=False, index=True
        ),
        sa.Column("requested_procedure_id", sa.String(16), nullable=False),
        sa.Column("procedure_description", sa.String(64), nullable=False),
        sa.Column("procedure_code", sa.String(64), nullable=False),
        sa.Column("referring_physician", sa.String(324), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("modality", sa.String(16), nullable=False, index=True),
        sa.Column("scheduled_date", sa.String(8), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_imaging_order_scheduled", "imaging_order", ["scheduled_date"])
    op.create_table(
        "scheduled_step",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column(
            "order_pk",
            sa.Integer(),
            sa.ForeignKey("imaging_order.pk", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("step_id", sa.String(16), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("station_ae", sa.String(16), nullable=False),
        sa.Column("start_date", sa.String(8), nullable=False),
        sa.Column("start_time", sa.String(16), nullable=False),
        sa.Column("description", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
    )
    op.create_table(
        "study_order",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column(
            "order_pk",
            sa.Integer(),
            sa.ForeignKey("imaging_order.pk", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("matched_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("study_order")
    op.drop_table("scheduled_step")
    op.drop_index("ix_imaging_order_scheduled", table_name="imaging_order")
    op.drop_table("imaging_order")
    op.drop_table("his_patient")
    op.drop_table("hl7_message")
