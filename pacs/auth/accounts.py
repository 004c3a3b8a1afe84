"""Accounts, password checks with lockout, and API tokens.

Tokens look like ``pacs_<id>_<secret>``: the id finds the row, the secret is
compared by hash (a SHA-256 is enough for 256-bit random secrets, and keeps
every API call fast, unlike a password hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.auth.models import Account, ApiToken, WebSession
from pacs.auth.password_policy import password_problem
from pacs.auth.passwords import hash_password, needs_rehash, random_password, verify_password
from pacs.auth.principal import Kind, Principal, Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
HUMAN_ROLES = {Role.ADMIN, Role.RADIOLOGIST, Role.CLINICIAN, Role.INTEGRATION, Role.AUDITOR}


class AccountError(Exception):
    """A request to change accounts that cannot be honoured (duplicate name, bad role...)."""


class SecondFactorRequired(Exception):
    """The password was right but the account needs a (valid) TOTP code, or must enrol one."""


@dataclass(frozen=True)
class AccountInfo:
    username: str
    role: Role
    disabled: bool
    created_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def create_account(
    sessions: sessionmaker[Session], username: str, password: str, role: Role | str
) -> None:
    role = Role(role)
    if role not in HUMAN_ROLES:
        raise AccountError(f"role {role} cannot be given to an account")
    if not username or len(username) > 64 or not username.isprintable():
        raise AccountError("user name must be 1-64 printable characters")
    if problem := password_problem(password, username):
        raise AccountError(problem)
    try:
        with sessions.begin() as session:
            session.add(
                Account(
                    username=username,
                    password_hash=hash_password(password),
                    role=str(role),
                    disabled=False,
                    failed_logins=0,
                    created_at=_now(),
                )
            )
    except IntegrityError as exc:
        raise AccountError(f"user {username!r} already exists") from exc


def list_accounts(sessions: sessionmaker[Session]) -> list[AccountInfo]:
    with sessions() as session:
        return [
            AccountInfo(a.username, Role(a.role), a.disabled, _aware(a.created_at) or _now())
            for a in session.scalars(select(Account).order_by(Account.username))
        ]


def _account(session: Session, username: str) -> Account:
    account = session.scalar(select(Account).where(Account.username == username))
    if account is None:
        raise AccountError(f"no user {username!r}")
    return account


def set_password(sessions: sessionmaker[Session], username: str, password: str) -> None:
    if problem := password_problem(password, username):
        raise AccountError(problem)
    with sessions.begin() as session:
        account = _account(session, username)
        account.password_hash = hash_password(password)
        account.failed_logins = 0
        account.locked_until = None


def set_disabled(sessions: sessionmaker[Session], username: str, disabled: bool = True) -> None:
    with sessions.begin() as session:
        _account(session, username).disabled = disabled


def ensure_admin(sessions: sessionmaker[Session], password: str | None = None) -> str | None:
    """Create the first admin when no account exists; return its password (to print once)."""
    with sessions() as session:
        if session.scalar(select(Account.pk).limit(1)) is not None:
            return None
    password = password or random_password()
    try:
        create_account(sessions, "admin", password, Role.ADMIN)
    except AccountError:  # another node created it first
        return None
    return password


def check_password(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    address: str = "",
    *,
    totp: str | None = None,
    admin_totp_required: bool = False,
) -> Principal | None:
    """The principal for valid credentials, else ``None``; counts failures and locks out.

    An account with a TOTP secret also needs the current code; a wrong code
    counts as a failed login. Raises :class:`SecondFactorRequired` when the
    password is right but the code is missing (or an admin has none to give).
    """
    with sessions.begin() as session:
        account = session.scalar(select(Account).where(Account.username == username))
        if account is None:
            verify_password(None, password)  # same cost as a real check
            return None
        locked_until = _aware(account.locked_until)
        if account.disabled or (locked_until is not None and locked_until > _now()):
            # Same cost as a real check, so the answer's timing does not say "locked".
            verify_password(account.password_hash, password)
            return None
        password_ok = verify_password(account.password_hash, password)
        if password_ok and account.totp_secret and totp is None:
            raise SecondFactorRequired("this account needs its one-time code")
        if password_ok and account.totp_secret and totp is not None:
            step = _totp_step(account.totp_secret, totp)
            # A code works once: a step at or before the last one accepted is a replay.
            password_ok = step is not None and step > (account.totp_last_step or -1)
            if password_ok:
                account.totp_last_step = step
        if not password_ok:
            account.failed_logins += 1
            if account.failed_logins >= MAX_FAILED_LOGINS:
                account.locked_until = _now() + LOCKOUT
                account.failed_logins = 0
            return None
        if admin_totp_required and account.role == Role.ADMIN and not account.totp_secret:
            raise SecondFactorRequired("admins must enrol a one-time code: pacs user totp NAME")
        account.failed_logins = 0
        account.locked_until = None
        if needs_rehash(account.password_hash):
            account.password_hash = hash_password(password)
        return Principal(Kind.USER, account.username, Role(account.role), address)


def _totp_step(secret: str, code: str) -> int | None:
    """The time step (RFC 6238) whose code ``code`` is, within one step of now; else ``None``."""
    totp = pyotp.TOTP(secret)
    now = _now()
    for offset in (0, -1, 1):
        moment = now + timedelta(seconds=offset * totp.interval)
        if hmac.compare_digest(totp.at(moment), code.strip()):
            return int(totp.timecode(moment))
    return None


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    sessions: sessionmaker[Session],
    username: str,
    name: str = "",
    expires_in: timedelta | None = None,
) -> str:
    """A new bearer token for ``username``: returned once, stored only as a hash."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    with sessions.begin() as session:
        account = _account(session, username)
        session.add(
            ApiToken(
                account_pk=account.pk,
                token_id=token_id,
                secret_hash=_secret_hash(secret),
                name=name,
                created_at=_now(),
                expires_at=_now() + expires_in if expires_in else None,
            )
        )
    return f"pacs_{token_id}_{secret}"


def revoke_token(sessions: sessionmaker[Session], token_id: str) -> bool:
    with sessions.begin() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.token_id == token_id))
        if token is None or token.revoked_at is not None:
            return False
        token.revoked_at = _now()
        return True


def check_token(sessions: sessionmaker[Session], token: str, address: str = "") -> Principal | None:
    """The principal of a valid, unexpired, unrevoked token of an enabled account."""
    if not token.startswith("pacs_"):
        return None
    token_id, _, secret = token.removeprefix("pacs_").partition("_")
    if not token_id or not secret:
        return None
    with sessions.begin() as session:
        row = session.execute(
            select(ApiToken, Account)
            .join(Account, ApiToken.account_pk == Account.pk)
            .where(ApiToken.token_id == token_id)
        ).first()
        if row is None:
            return None
        api_token, account = row
        if not hmac.compare_digest(api_token.secret_hash, _secret_hash(secret)):
            return None
        expires_at = _aware(api_token.expires_at)
        if api_token.revoked_at is not None or account.disabled:
            return None
        if expires_at is not None and expires_at <= _now():
            return None
        last_used = _aware(api_token.last_used_at)
        if last_used is None or _now() - last_used > timedelta(minutes=1):
            api_token.last_used_at = _now()  # coarse, so that API calls stay read-only
        return Principal(Kind.TOKEN, account.username, Role(account.role), address)


def enrol_totp(sessions: sessionmaker[Session], username: str) -> str:
    """Give the account a new TOTP secret; return the otpauth:// URI for an authenticator app."""
    secret = pyotp.random_base32()
    with sessions.begin() as session:
        _account(session, username).totp_secret = secret
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="PACS")


def remove_totp(sessions: sessionmaker[Session], username: str) -> None:
    with sessions.begin() as session:
        _account(session, username).totp_secret = None


def session_fingerprint(password_hash: str) -> str:
    """Changes whenever the password does, so a new password ends every open session."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def start_session(sessions: sessionmaker[Session], username: str, hours: float) -> str:
    """A new server-side web session for ``username``; its id goes into the signed cookie."""
    session_id = secrets.token_urlsafe(32)
    with sessions.begin() as session:
        session.add(
            WebSession(
                session_id=session_id,
                username=username,
                created_at=_now(),
                expires_at=_now() + timedelta(hours=hours),
            )
        )
    return session_id


def end_session(sessions: sessionmaker[Session], session_id: str) -> str | None:
    """Log a web session out on the server; the user name it belonged to, if it was live."""
    with sessions.begin() as session:
        row = session.scalar(select(WebSession).where(WebSession.session_id == session_id))
        if row is None or row.revoked_at is not None:
            return None
        row.revoked_at = _now()
        return row.username


def check_session_account(
    sessions: sessionmaker[Session],
    username: str,
    fingerprint: str,
    address: str = "",
    session_id: str = "",
) -> Principal | None:
    """The principal of a live web session: not logged out, not expired, same password."""
    with sessions() as session:
        row = session.execute(
            select(Account, WebSession)
            .join(WebSession, WebSession.username == Account.username)
            .where(Account.username == username, WebSession.session_id == session_id)
        ).first()
        if row is None:
            return None
        account, web_session = row
        expires_at = _aware(web_session.expires_at)
        if account.disabled or web_session.revoked_at is not None:
            return None
        if expires_at is None or expires_at <= _now():
            return None
        if not hmac.compare_digest(session_fingerprint(account.password_hash), fingerprint):
            return None
        return Principal(Kind.USER, account.username, Role(account.role), address)


def password_fingerprint(sessions: sessionmaker[Session], username: str) -> str:
    with sessions() as session:
        return session_fingerprint(_account(session, username).password_hash)


def ensure_sso_account(sessions: sessionmaker[Session], username: str, role: Role) -> None:
    """The local row of a single-sign-on user: no password, role refreshed at every login."""
    with sessions.begin() as session:
        account = session.scalar(select(Account).where(Account.username == username))
        if account is None:
            session.add(
                Account(
                    username=username,
                    password_hash="",  # never matches: these users log in only through the IdP
                    role=str(role),
                    disabled=False,
                    failed_logins=0,
                    created_at=_now(),
                )
            )
        elif not account.disabled:
            account.role = str(role)
