"""Rows of the hospital workflow: HL7 messages received, HIS patients, orders, their steps.

The HIS is the master of demographics and orders; these rows keep what it sent
(issue 16). A study is tied to its order by ``study_order`` (a row with no
order is a study that arrived with none: the reconciliation list).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pacs.index.models import Base

TZ = DateTime(timezone=True)


class Hl7Message(Base):
    """One HL7 message as received (raw), what we understood of it, and what we answered.

    ``(sending_app, sending_facility, accepted_id)`` is unique: ``accepted_id`` is
    the control ID of an accepted message (null for a refused one, which had no
    effect and may be sent again once fixed), so a message accepted and sent
    again gets the answer stored here and no second effect.
    """

    __tablename__ = "hl7_message"
    __table_args__ = (
        UniqueConstraint(
            "sending_app", "sending_facility", "accepted_id", name="uq_hl7_message_accepted"
        ),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(TZ, index=True)
    peer: Mapped[str] = mapped_column(String(64))
    sending_app: Mapped[str] = mapped_column(String(64))
    sending_facility: Mapped[str] = mapped_column(String(64))
    control_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    accepted_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message_type: Mapped[str] = mapped_column(String(16))
    raw: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)  # JSON: what the mapping understood
    ack_code: Mapped[str] = mapped_column(String(2))
    error: Mapped[str] = mapped_column(Text)
    ack: Mapped[str] = mapped_column(Text)


class HisPatient(Base):
    """A patient as the HIS knows them; ``merged_into`` keeps a merged identifier findable."""

    __tablename__ = "his_patient"
    __table_args__ = (UniqueConstraint("patient_id", "issuer", name="uq_his_patient"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    issuer: Mapped[str] = mapped_column(String(64))
    citizen_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(324))
    name_folded: Mapped[str] = mapped_column(String(324), index=True)
    birth_date: Mapped[str] = mapped_column(String(8))
    sex: Mapped[str] = mapped_column(String(16))
    merged_into: Mapped[int | None] = mapped_column(
        ForeignKey("his_patient.pk"), nullable=True, index=True
    )
    updated_at: Mapped[datetime] = mapped_column(TZ)


class ImagingOrder(Base):
    """An imaging order (a requested procedure) and its status."""

    __tablename__ = "imaging_order"
    __table_args__ = (Index("ix_imaging_order_scheduled", "scheduled_date"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    accession_number: Mapped[str] = mapped_column(String(16), unique=True)
    placer_number: Mapped[str] = mapped_column(String(64))
    filler_number: Mapped[str] = mapped_column(String(64))
    patient_pk: Mapped[int] = mapped_column(ForeignKey("his_patient.pk"), index=True)
    requested_procedure_id: Mapped[str] = mapped_column(String(16))
    procedure_description: Mapped[str] = mapped_column(String(64))
    procedure_code: Mapped[str] = mapped_column(String(64))
    referring_physician: Mapped[str] = mapped_column(String(324))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Of the first step, copied here so that the order list filters without a join.
    modality: Mapped[str] = mapped_column(String(16), index=True)
    scheduled_date: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)

    patient: Mapped[HisPatient] = relationship()
    steps: Mapped[list[ScheduledStep]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="ScheduledStep.pk"
    )


class ScheduledStep(Base):
    """A scheduled procedure step of an order (what a modality worklist answers)."""

    __tablename__ = "scheduled_step"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_pk: Mapped[int] = mapped_column(
        ForeignKey("imaging_order.pk", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str] = mapped_column(String(16))
    station_ae: Mapped[str] = mapped_column(String(16))
    start_date: Mapped[str] = mapped_column(String(8))
    start_time: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))

    order: Mapped[ImagingOrder] = relationship(back_populates="steps")


class StudyOrder(Base):
    """Which order a stored study belongs to; ``order_pk`` null: none matched (yet)."""

    __tablename__ = "study_order"

    study_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_pk: Mapped[int | None] = mapped_column(
        ForeignKey("imaging_order.pk", ondelete="SET NULL"), nullable=True, index=True
    )
    matched_by: Mapped[str] = mapped_column(String(16))  # accession, patient, none
    matched_at: Mapped[datetime] = mapped_column(TZ)


class PerformedStep(Base):
    """A Modality Performed Procedure Step (MPPS) as the modality reported it."""

    __tablename__ = "performed_step"

    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # IN PROGRESS, COMPLETED, DISCONTINUED
    accession_number: Mapped[str] = mapped_column(String(16), index=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    station_ae: Mapped[str] = mapped_column(String(16))
    performed_series: Mapped[str] = mapped_column(Text)  # JSON list of Series Instance UIDs
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)
