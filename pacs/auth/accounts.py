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
from pacs.auth.scopes import load as load_scopes
from pacs.auth.scopes import text as scope_text

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
HUMAN_ROLES = {Role.ADMIN, Role.RADIOLOGIST, Role.CLINICIAN, Role.INTEGRATION, Role.AUDITOR}


class AccountError(Exception):
    """A request to change accounts that cannot be honoured (duplicate name, bad role...)."""


class UnknownAccount(AccountError):
    """No account has this user name."""


class DuplicateAccount(AccountError):
    """The user name is taken."""


class SecondFactorRequired(Exception):
    """The password was right but the account needs a (valid) TOTP code, or must enrol one."""


class AccountLocked(Exception):
    """Too many failed logins: the account refuses every password until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"account locked until {until.isoformat()}")
        self.until = until


class AccountDisabled(Exception):
    """The password was right, but an administrator has disabled the account."""


class WrongPassword(AccountError):
    """The current password given to change one's own password is not the current one."""


@dataclass(frozen=True)
class AccountInfo:
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    failed_logins: int = 0
    locked_until: datetime | None = None  # only while the lock lasts
    totp_enrolled: bool = False
    sso: bool = False  # no local password: logs in through the identity provider


@dataclass(frozen=True)
class TokenInfo:
    """An API token as an administrator sees it: never its secret."""

    token_id: str
    username: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    scopes: str | None = None  # SMART scopes, space-separated; None acts with the role

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= _now():
            return "expired"
        return "active"


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
        raise DuplicateAccount(f"user {username!r} already exists") from exc


def _info(account: Account) -> AccountInfo:
    locked_until = _aware(account.locked_until)
    return AccountInfo(
        account.username,
        Role(account.role),
        account.disabled,
        _aware(account.created_at) or _now(),
        failed_logins=account.failed_logins or 0,
        locked_until=locked_until if locked_until and locked_until > _now() else None,
        totp_enrolled=bool(account.totp_secret),
        sso=not account.password_hash,
    )


def list_accounts(sessions: sessionmaker[Session]) -> list[AccountInfo]:
    with sessions() as session:
        return [_info(a) for a in session.scalars(select(Account).order_by(Account.username))]


def get_account(sessions: sessionmaker[Session], username: str) -> AccountInfo:
    """One account's state (role, disabled, lock, second factor); AccountError if unknown."""
    with sessions() as session:
        return _info(_account(session, username))


def _account(session: Session, username: str) -> Account:
    account = session.scalar(select(Account).where(Account.username == username))
    if account is None:
        raise UnknownAccount(f"no user {username!r}")
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
        account = _account(session, username)
        if disabled and account.role == Role.ADMIN and not account.disabled:
            _keep_an_admin(session, account)
        account.disabled = disabled


def set_role(sessions: sessionmaker[Session], username: str, role: Role | str) -> None:
    """Give the account another role; the last enabled admin keeps theirs."""
    role = Role(role)
    if role not in HUMAN_ROLES:
        raise AccountError(f"role {role} cannot be given to an account")
    with sessions.begin() as session:
        account = _account(session, username)
        if account.role == Role.ADMIN and role != Role.ADMIN and not account.disabled:
            _keep_an_admin(session, account)
        account.role = str(role)


class LastAdmin(AccountError):
    """The change would leave no enabled admin: nobody could administer the archive."""


def _keep_an_admin(session: Session, leaving: Account) -> None:
    others = session.scalar(
        select(Account.pk)
        .where(
            Account.role == str(Role.ADMIN),
            Account.disabled.is_(False),
            Account.pk != leaving.pk,
        )
        .limit(1)
    )
    if others is None:
        raise LastAdmin(f"{leaving.username} is the last enabled admin")


def unlock(sessions: sessionmaker[Session], username: str) -> None:
    """Lift a lockout and forget the failed logins counted so far."""
    with sessions.begin() as session:
        account = _account(session, username)
        account.failed_logins = 0
        account.locked_until = None


def change_own_password(
    sessions: sessionmaker[Session], username: str, current: str, new: str
) -> None:
    """A user's own change: the current password must be right (WrongPassword otherwise)."""
    with sessions() as session:
        account = _account(session, username)
        if not account.password_hash:
            raise AccountError("this account signs in through the identity provider")
        if not verify_password(account.password_hash, current):
            raise WrongPassword("the current password is not right")
    if secrets.compare_digest(current, new):
        raise AccountError("the new password must differ from the current one")
    set_password(sessions, username, new)


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
    explain: bool = False,
) -> Principal | None:
    """The principal for valid credentials, else ``None``; counts failures and locks out.

    With ``explain`` (the login form) a locked account raises
    :class:`AccountLocked` whatever the password, and a disabled one
    :class:`AccountDisabled` when the password is right; without it both are
    ``None`` (scripts' Basic credentials).

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
        if locked_until is not None and locked_until > _now():
            # Same cost as a real check; and the same answer whatever the password, so a
            # guesser learns nothing from trying during the lock (the login route gives
            # unknown names the same answer after as many failures).
            verify_password(account.password_hash, password)
            if explain:
                raise AccountLocked(locked_until)
            return None
        if account.disabled:
            # Said only to whoever knows the password: a guesser gets "wrong password".
            if verify_password(account.password_hash, password) and explain:
                raise AccountDisabled("this account has been disabled")
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
    scopes: frozenset[str] | None = None,
) -> str:
    """A new bearer token for ``username``: returned once, stored only as a hash; with
    ``scopes`` (SMART, :mod:`pacs.auth.scopes`) it may only read what they name."""
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
                scopes=scope_text(scopes) if scopes is not None else None,
            )
        )
    return f"pacs_{token_id}_{secret}"


def list_tokens(sessions: sessionmaker[Session], username: str | None = None) -> list[TokenInfo]:
    """Every token (or one user's), newest first: id, name, expiry, revocation, last use."""
    query = select(ApiToken, Account.username).join(Account, ApiToken.account_pk == Account.pk)
    if username is not None:
        query = query.where(Account.username == username)
    with sessions() as session:
        if username is not None:
            _account(session, username)
        rows = session.execute(query.order_by(ApiToken.created_at.desc(), ApiToken.pk.desc()))
        return [
            TokenInfo(
                token.token_id,
                owner,
                token.name,
                _aware(token.created_at) or _now(),
                _aware(token.expires_at),
                _aware(token.revoked_at),
                _aware(token.last_used_at),
                token.scopes,
            )
            for token, owner in rows
        ]


def token_owner(sessions: sessionmaker[Session], token_id: str) -> str | None:
    """The user name a token belongs to, or ``None`` for an unknown id."""
    with sessions() as session:
        return session.scalar(
            select(Account.username)
            .join(ApiToken, ApiToken.account_pk == Account.pk)
            .where(ApiToken.token_id == token_id)
        )


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
        return Principal(
            Kind.TOKEN,
            account.username,
            Role(account.role),
            address,
            scopes=load_scopes(api_token.scopes),
        )


def enrol_totp(sessions: sessionmaker[Session], username: str) -> str:
    """Give the account a new TOTP secret; return the otpauth:// URI for an authenticator app."""
    secret = pyotp.random_base32()
    with sessions.begin() as session:
        account = _account(session, username)
        account.totp_secret = secret
        account.totp_last_step = None  # steps of the old secret say nothing about the new
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="PACS")


def remove_totp(sessions: sessionmaker[Session], username: str) -> None:
    with sessions.begin() as session:
        account = _account(session, username)
        account.totp_secret = None
        account.totp_last_step = None


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
