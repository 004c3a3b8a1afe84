"""Rows of routing: rules, DICOMweb destinations, the per-destination outbox, retrievals.

A rule says which arriving studies (or instances) go where; each match becomes a
``routing_send`` row (the outbox) and a job. The outbox is drained per
destination in priority order (``routing_lane`` says which worker drains a
destination now), so one destination's outage holds only its own sends.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import UID, Base

TZ = DateTime(timezone=True)


class RoutingEndpoint(Base):
    """A DICOMweb (STOW-RS) destination and the credential sent to it."""

    __tablename__ = "routing_endpoint"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(512))  # the DICOMweb base (…/dicom-web)
    auth: Mapped[str] = mapped_column(String(16), default="none")  # none, bearer, basic
    username: Mapped[str] = mapped_column(String(128), default="")
    secret: Mapped[str] = mapped_column(Text, default="")  # never shown back (masked)
    description: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class RoutingRule(Base):
    """Which arrivals to send where; empty patterns match anything."""

    __tablename__ = "routing_rule"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    trigger: Mapped[str] = mapped_column(String(16))  # stable, instance
    calling_ae: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(64), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    window_start: Mapped[str] = mapped_column(String(5), default="")  # HH:MM, local time
    window_end: Mapped[str] = mapped_column(String(5), default="")
    destination: Mapped[str] = mapped_column(String(80))  # ae:TITLE or web:NAME
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class RoutingSend(Base):
    """One study (or some of its instances) to deliver to one destination."""

    __tablename__ = "routing_send"
    __table_args__ = (Index("ix_routing_send_lane", "destination", "state", "priority"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    destination: Mapped[str] = mapped_column(String(80))
    study_uid: Mapped[str] = mapped_column(UID, index=True)
    sop_uids: Mapped[str] = mapped_column(Text, default="")  # JSON list; empty: the whole study
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))  # pending, sent, failed, cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(160), default="")  # rule:NAME or user:NAME
    # A rule's send is made once per arrival, even if its job runs twice.
    dedup: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class RoutingLane(Base):
    """Who drains a destination's outbox now: one worker at a time, under a lease."""

    __tablename__ = "routing_lane"

    destination: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(TZ, nullable=True)


class RemoteRetrieve(Base):
    """A C-MOVE from a remote PACS to this archive, and its progress."""

    __tablename__ = "remote_retrieve"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    study_uid: Mapped[str] = mapped_column(UID)
    series_uid: Mapped[str] = mapped_column(UID, default="")
    state: Mapped[str] = mapped_column(String(16))  # pending, done, failed
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    warning: Mapped[int] = mapped_column(Integer, default=0)
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class Consultation(Base):
    """A consultation between facilities (hội chẩn), on either side.

    ``out``: we asked ``facility`` (a DICOMweb endpoint) about our study; the
    answer comes back carrying ``secret_hash``'s secret. ``in``: ``facility``
    asked us; ``reply_url`` and ``reply_secret`` are where and how to answer.
    """

    __tablename__ = "consultation"
    __table_args__ = (Index("ux_consultation_origin", "reply_url", "remote_id", unique=True),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))  # out, in
    study_uid: Mapped[str] = mapped_column(UID, index=True)
    question: Mapped[str] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(8))  # routine, urgent, stat
    facility: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # sending, requested, received, answered
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_by: Mapped[str] = mapped_column(String(128), default="")
    requested_by: Mapped[str] = mapped_column(String(128), default="")
    send_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # out: the study's send
    secret_hash: Mapped[str] = mapped_column(String(64), default="")  # out
    reply_url: Mapped[str | None] = mapped_column(String(512), nullable=True)  # in
    remote_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # in
    reply_secret: Mapped[str] = mapped_column(String(128), default="")  # in
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class ExternalStudy(Base):
    """A study that came from another facility, and how its patient ID was mapped here."""

    __tablename__ = "external_study"

    study_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    source: Mapped[str] = mapped_column(String(160))  # ae:TITLE, facility:NAME, media
    original_patient_id: Mapped[str] = mapped_column(String(64), default="")
    mapped_patient_id: Mapped[str] = mapped_column(String(64), default="")  # "" unmapped
    citizen_id: Mapped[str] = mapped_column(String(64), default="")
    marked_at: Mapped[datetime] = mapped_column(TZ)
