"""Rows of the durable job queue, the change feed and the study-stable bookkeeping.

The queue lives in the index database so that a job and the data it is about
commit together, and so that every node of a cluster sees one queue without
another service to run (no broker: a hospital's embedded install has none).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import UID, Base

TZ = DateTime(timezone=True)


class Job(Base):
    """One unit of work that must survive a restart (forward, report, purge...)."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_state_run_after", "state", "run_after"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[str] = mapped_column(Text)  # JSON object
    state: Mapped[str] = mapped_column(String(16))  # see pacs.jobs.queue.JobState
    run_after: Mapped[datetime] = mapped_column(TZ)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_expires: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # At most one job ever per key (e.g. "forward:PEER:study:updated-at"); NULL: no de-duplication.
    dedup_key: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class Change(Base):
    """One entry of the change feed: a study or series appeared, or a study became stable.

    Written where the index writer creates parent rows (never per instance), so
    the feed costs ingest nothing on the path most instances take.
    """

    __tablename__ = "change"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    study_uid: Mapped[str] = mapped_column(UID, index=True)
    series_uid: Mapped[str] = mapped_column(UID, default="")
    at: Mapped[datetime] = mapped_column(TZ)


class StudyStable(Base):
    """The study's ``updated_at`` when it was last declared stable: a later one fires again."""

    __tablename__ = "study_stable"

    study_pk: Mapped[int] = mapped_column(
        ForeignKey("study.pk", ondelete="CASCADE"), primary_key=True
    )
    updated_at: Mapped[datetime] = mapped_column(TZ)
