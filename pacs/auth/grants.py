"""Share grants: a link (or QR code on a result slip) that opens one study, read-only.

The link carries ``<grant id>.<signature>``, never a patient identifier. The
signature (the server key over the grant id) lets forged or mistyped links be
refused without a database lookup; the row makes the grant expiring and
revocable, and an optional PIN protects a slip that gets lost. Five wrong PINs
revoke the grant: each failure is counted by an atomic update committed on
its own, before the refusal is answered, so neither an error response's
rollback nor concurrent guesses can lose a count (the routes add per-link and
per-address rate limits on top).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, Signer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.auth.accounts import _aware
from pacs.auth.models import ShareGrant
from pacs.auth.passwords import hash_password, verify_password
from pacs.auth.principal import Kind, Principal, Role

MAX_PIN_FAILURES = 5


class GrantError(Exception):
    """The link is unknown, forged, expired or revoked (one reason, shown to the holder).

    ``reason`` names the catalogue text (``share.<reason>``) the holder reads.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class PinRequired(GrantError):
    """The grant is valid but asks for its PIN."""


class WrongPin(PinRequired):
    """A wrong PIN, counted; ``failures`` so far (the link is withdrawn at the limit)."""

    def __init__(self, message: str, failures: int, study_uid: str) -> None:
        super().__init__(message)
        self.failures = failures
        self.study_uid = study_uid


class PinLimitReached(GrantError):
    """This wrong PIN was the last allowed: the link has just been withdrawn."""

    def __init__(self, message: str, study_uid: str) -> None:
        super().__init__(message, "too_many_pins")
        self.study_uid = study_uid


@dataclass(frozen=True)
class GrantInfo:
    grant_id: str
    study_uid: str
    created_by: str
    expires_at: datetime
    revoked: bool
    has_pin: bool


def _signer(key: str) -> Signer:
    return Signer(key, salt="pacs-share-grant")


def link_token(key: str, grant_id: str) -> str:
    return _signer(key).sign(grant_id).decode()


def create_grant(
    sessions: sessionmaker[Session],
    study_uid: str,
    created_by: str,
    days: float,
    pin: str | None = None,
) -> GrantInfo:
    if pin is not None and not (4 <= len(pin) <= 12 and pin.isdigit()):
        raise GrantError("a PIN has 4 to 12 digits")
    now = datetime.now(UTC)
    grant = ShareGrant(
        grant_id=secrets.token_urlsafe(16),
        study_uid=study_uid,
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(days=days),
        pin_hash=hash_password(pin) if pin else None,
        failed_pins=0,
    )
    with sessions.begin() as session:
        session.add(grant)
    return GrantInfo(grant.grant_id, study_uid, created_by, grant.expires_at, False, bool(pin))


def revoke_grant(sessions: sessionmaker[Session], grant_id: str) -> GrantInfo | None:
    with sessions.begin() as session:
        grant = session.scalar(select(ShareGrant).where(ShareGrant.grant_id == grant_id))
        if grant is None:
            return None
        grant.revoked_at = grant.revoked_at or datetime.now(UTC)
        return _info(grant)


def get_grant(sessions: sessionmaker[Session], grant_id: str) -> GrantInfo | None:
    with sessions() as session:
        grant = session.scalar(select(ShareGrant).where(ShareGrant.grant_id == grant_id))
        return _info(grant) if grant else None


def _info(grant: ShareGrant) -> GrantInfo:
    return GrantInfo(
        grant.grant_id,
        grant.study_uid,
        grant.created_by,
        _aware(grant.expires_at) or grant.expires_at,
        grant.revoked_at is not None,
        grant.pin_hash is not None,
    )


@dataclass(frozen=True)
class GrantRow:
    """A share as its creator or an administrator lists it (no PIN, no link secret)."""

    grant_id: str
    study_uid: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    has_pin: bool
    failed_pins: int

    @property
    def state(self) -> str:
        """``active``, ``expired``, ``revoked``, or ``withdrawn`` (too many wrong PINs)."""
        if self.revoked_at is not None:
            return "withdrawn" if self.failed_pins >= MAX_PIN_FAILURES else "revoked"
        if self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"


def list_grants(
    sessions: sessionmaker[Session],
    *,
    created_by: str | None = None,
    study_uid: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[list[GrantRow], int]:
    """Shares newest first (optionally one creator's or one study's), and how many match."""
    query = select(ShareGrant)
    if created_by is not None:
        query = query.where(ShareGrant.created_by == created_by)
    if study_uid is not None:
        query = query.where(ShareGrant.study_uid == study_uid)
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = session.scalars(
            query.order_by(ShareGrant.created_at.desc(), ShareGrant.pk.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = [
            GrantRow(
                grant.grant_id,
                grant.study_uid,
                grant.created_by,
                _aware(grant.created_at) or grant.created_at,
                _aware(grant.expires_at) or grant.expires_at,
                _aware(grant.revoked_at),
                grant.pin_hash is not None,
                grant.failed_pins or 0,
            )
            for grant in page
        ]
    return rows, int(total)


def grant_id_from_token(key: str, token: str) -> str:
    try:
        return _signer(key).unsign(token).decode()
    except BadSignature as exc:
        raise GrantError("this link is not valid") from exc


def open_grant(
    sessions: sessionmaker[Session],
    grant_id: str,
    pin: str | None = None,
    address: str = "",
    *,
    pin_checked: bool = False,
) -> Principal:
    """The read-only principal of a live grant; checks the PIN unless already checked.

    Raises :class:`GrantError` (withdrawn, expired), :class:`PinRequired`
    (no PIN given), :class:`WrongPin` (counted) or :class:`PinLimitReached`.
    """
    with sessions() as session:
        grant = session.scalar(select(ShareGrant).where(ShareGrant.grant_id == grant_id))
        if grant is None or grant.revoked_at is not None:
            raise GrantError("this link has been withdrawn", "withdrawn")
        expires_at = _aware(grant.expires_at)
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise GrantError("this link has expired", "expired")
        pk, study_uid, pin_hash = grant.pk, grant.study_uid, grant.pin_hash
    principal = Principal(Kind.GRANT, grant_id, Role.SHARE, address, study_uid)
    if not pin_hash or pin_checked:
        return principal
    if pin is None:
        raise PinRequired("enter the PIN printed with this link")
    if not verify_password(pin_hash, pin):
        failures = _count_failure(sessions, pk)
        if failures >= MAX_PIN_FAILURES:
            raise PinLimitReached("too many wrong PINs: this link has been withdrawn", study_uid)
        raise WrongPin("wrong PIN", failures, study_uid)
    with sessions.begin() as session:
        # The right PIN opens the link only if no concurrent guess withdrew it meanwhile.
        still_live = session.execute(
            update(ShareGrant)
            .where(ShareGrant.pk == pk, ShareGrant.revoked_at.is_(None))
            .values(failed_pins=0)
            .returning(ShareGrant.pk)
        ).scalar_one_or_none()
        if still_live is None:
            raise GrantError("this link has been withdrawn", "withdrawn")
    return principal


def _count_failure(sessions: sessionmaker[Session], pk: int) -> int:
    """Add one wrong PIN in its own committed transaction; withdraw the link at the limit."""
    with sessions.begin() as session:
        failures = session.execute(
            update(ShareGrant)
            .where(ShareGrant.pk == pk)
            .values(failed_pins=ShareGrant.failed_pins + 1)
            .returning(ShareGrant.failed_pins)
        ).scalar_one()
        if failures >= MAX_PIN_FAILURES:
            session.execute(
                update(ShareGrant)
                .where(ShareGrant.pk == pk, ShareGrant.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
    return int(failures)
