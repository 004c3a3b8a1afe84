"""Accounts and API tokens as index rows: one database holds the archive and who may use it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pacs.index.models import Base


class Account(Base):
    """A person or a machine (integration) that logs in; ``role`` is a :class:`Role` value."""

    __tablename__ = "account"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The TOTP time step last accepted: a code works once (RFC 6238 section 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class WebSession(Base):
    """A logged-in browser: its cookie names this row, so logging out ends it on the server."""

    __tablename__ = "web_session"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiToken(Base):
    """A bearer token: only its hash is kept; the secret is shown once, at creation."""

    __tablename__ = "api_token"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_pk: Mapped[int] = mapped_column(ForeignKey("account.pk", ondelete="CASCADE"))
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # SMART scopes (space-separated) of a client app's token; None acts with the role.
    scopes: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class ShareGrant(Base):
    """Read-only access to one study for whoever holds the link (and the PIN, when set)."""

    __tablename__ = "share_grant"
    __table_args__ = (Index("ix_share_grant_created_at", "created_at"),)  # statistics

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(32), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    pin_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    failed_pins: Mapped[int] = mapped_column(Integer, default=0)


class CredentialFailure(Base):
    """One failed credential attempt (login, Basic, token, share-link PIN), seen by every node.

    Kept only for the limiter's window (a minute, or the account lockout's for
    user names): a guesser spreading attempts over the nodes behind a load
    balancer meets the same count on each (issue 20 item 4). ``at_ms`` is epoch
    milliseconds: plain integers compare the same on SQLite and PostgreSQL.
    """

    __tablename__ = "credential_failure"
    __table_args__ = (
        Index("ix_credential_failure_scope_key_at", "scope", "key", "at_ms"),
        Index("ix_credential_failure_at", "at_ms"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # login, name, pin
    key: Mapped[str] = mapped_column(String(128))  # an address, a user name, a link
    at_ms: Mapped[int] = mapped_column(BigInteger)
