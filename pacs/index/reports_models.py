"""Rows of the reporting context (issue 17): reports and their versions, templates, saved
phrases, signing certificates and the reading turnaround of each study.

A signed report row never changes again: an addendum is a new row whose ``amends_pk``
names the signed one. The signed PDF is kept here too (it is also stored in the study as
an Encapsulated PDF), so that ``GET /api/reports/{id}/pdf`` answers the very bytes signed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base

TZ = DateTime(timezone=True)


class Report(Base):
    """One version of a study's report: a draft, a signed report or an addendum to one."""

    __tablename__ = "report"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    # draft, awaiting-approval (signed, second reader pending), final
    status: Mapped[str] = mapped_column(String(24), index=True)
    amends_pk: Mapped[int | None] = mapped_column(
        ForeignKey("report.pk"), nullable=True, index=True
    )
    template_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    language: Mapped[str] = mapped_column(String(8))
    findings: Mapped[str] = mapped_column(Text)
    conclusion: Mapped[str] = mapped_column(Text)
    recommendations: Mapped[str] = mapped_column(Text)
    key_images: Mapped[str] = mapped_column(Text)  # JSON list of SOP Instance UIDs
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    signer: Mapped[str] = mapped_column(String(64))
    signer_code: Mapped[str] = mapped_column(String(64))  # health-professional code (CCHN)
    signed_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    cert_subject: Mapped[str] = mapped_column(String(512))
    cert_serial: Mapped[str] = mapped_column(String(128))
    cert_sha256: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    sr_uid: Mapped[str] = mapped_column(String(64))
    pdf_uid: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ReportTemplate(Base):
    """A template per modality and body part (empty body part: any), edited at runtime."""

    __tablename__ = "report_template"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    modality: Mapped[str] = mapped_column(String(16), index=True)
    body_part: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    findings: Mapped[str] = mapped_column(Text)
    conclusion: Mapped[str] = mapped_column(Text)
    recommendations: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(TZ)


class ReportPhrase(Base):
    """A user's macro or saved phrase: a short name that expands to text in the editor."""

    __tablename__ = "report_phrase"
    __table_args__ = (UniqueConstraint("username", "name", name="uq_report_phrase"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class SigningCertificate(Base):
    """A user's signing certificate: a PKCS#12 file (its passphrase never stored) or a PKCS#11
    token's labels (its PIN never stored either)."""

    __tablename__ = "signing_certificate"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # pkcs12, pkcs11
    pkcs12: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    token_label: Mapped[str] = mapped_column(String(64))
    key_label: Mapped[str] = mapped_column(String(64))
    professional_code: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(512))
    serial: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    not_after: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class ReadingTimes(Base):
    """Turnaround of one study's reading: acquired, first opened, first draft, signed."""

    __tablename__ = "reading_times"

    study_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    acquired_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    first_opened_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    first_opened_by: Mapped[str] = mapped_column(String(64))
    draft_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
