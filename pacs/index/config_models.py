"""Rows of the runtime configuration an administrator edits while the archive runs.

Bootstrap values (where the index and the store are, ports, secrets) stay in
the settings; what changes at run time lives here, so that every node of a
cluster reads the same and nothing needs a restart (DESIGN: runtime
configuration). Every write also bumps ``config_version``: a node polls that
one row to learn that its cached copy is stale.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base

TZ = DateTime(timezone=True)


class RemoteAERow(Base):
    """A DICOM peer we know: where to reach it, what it may ask for, how to talk to it."""

    __tablename__ = "remote_ae"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    services: Mapped[str] = mapped_column(String(64))  # comma-separated: echo,find,move,get,store
    # Character set assumed for its datasets that declare none (e.g. "ISO_IR 100").
    charset_fallback: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Character set of our C-FIND responses to it: utf8, ascii or latin1.
    charset_profile: Mapped[str] = mapped_column(String(8))
    tls_required: Mapped[bool] = mapped_column(Boolean)
    # With DICOM TLS: the name its client certificate must carry (subject CN or a SAN).
    tls_identity: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class CallingAERow(Base):
    """A calling AE title allowed to associate (and store) without being a registered peer."""

    __tablename__ = "allowed_calling_ae"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    description: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(TZ)


class ConfigVersion(Base):
    """One row whose number grows with every configuration change (the nodes' cache key)."""

    __tablename__ = "config_version"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
