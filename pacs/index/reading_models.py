"""Rows of the reading context (issue 17 item 3): who is reading which study right now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base

TZ = DateTime(timezone=True)


class ReadingClaim(Base):
    """A radiologist's claim on a study, so that two do not read it at once.

    A claim lapses at ``expires_at`` (a reader who walked away does not hold the study
    for ever); claiming again renews it. One row per study: the primary key is the lock.
    """

    __tablename__ = "reading_claim"

    study_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    claimed_at: Mapped[datetime] = mapped_column(TZ)
    expires_at: Mapped[datetime] = mapped_column(TZ)
