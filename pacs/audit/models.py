"""One row per audited operation; ``hash`` chains each row to the one before it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_patient", "patient_id"),
        Index("ix_audit_event_study", "study_uid"),
        Index("ix_audit_event_action_at", "action", "at"),  # statistics (share openings)
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(256))
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    study_uid: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditPatient(Base):
    """A patient a search returned: lets the per-patient access report find the search.

    The record's ``detail`` names the same patients (so the hash covers them);
    this table only indexes them.
    """

    __tablename__ = "audit_patient"
    __table_args__ = (Index("ix_audit_patient_patient", "patient_id"),)

    event_pk: Mapped[int] = mapped_column(
        ForeignKey("audit_event.pk", ondelete="CASCADE"), primary_key=True
    )
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
