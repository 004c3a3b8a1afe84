"""Accounts, tokens and share grants of one archive, as doors reach them: through the facade.

The functions of :mod:`pacs.auth.accounts` and :mod:`pacs.auth.grants` take
the index's session factory; the login routes, the share routes and ``pacs
user`` used to pass ``archive.sessions`` themselves, reaching past the facade.
``archive.auth`` binds the factory once, so a door names the operation and
never holds a session. The functions keep their contracts (and errors:
:class:`~pacs.auth.accounts.AccountError`, :class:`~pacs.auth.grants.GrantError`...).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from pacs.auth import accounts, grants
from pacs.auth.accounts import AccountInfo, TokenInfo
from pacs.auth.grants import GrantInfo, GrantRow
from pacs.auth.principal import Principal, Role
from pacs.auth.ratelimit import FailureLimiter


class Auth:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # -- accounts ----------------------------------------------------------------------

    def failure_limiter(self, scope: str, limit: int, window: float = 60.0) -> FailureLimiter:
        """A limiter of failed credentials whose counts every node shares (the database)."""
        return FailureLimiter(self._sessions, scope, limit, window)

    def create_account(self, username: str, password: str, role: Role | str) -> None:
        """A new local account; AccountError for a bad name, password or role, or a taken name."""
        accounts.create_account(self._sessions, username, password, role)

    def list_accounts(self) -> list[AccountInfo]:
        """Every account, by user name."""
        return accounts.list_accounts(self._sessions)

    def set_password(self, username: str, password: str) -> None:
        """Replace the password (and lift a lockout); AccountError for an unknown user."""
        accounts.set_password(self._sessions, username, password)

    def set_disabled(self, username: str, disabled: bool = True) -> None:
        """Disable or enable the account; AccountError for an unknown user, LastAdmin when
        it would leave no enabled admin."""
        accounts.set_disabled(self._sessions, username, disabled)

    def get_account(self, username: str) -> AccountInfo:
        """One account's state, lock included; AccountError for an unknown user."""
        return accounts.get_account(self._sessions, username)

    def set_role(self, username: str, role: Role | str) -> None:
        """Change the account's role; AccountError (LastAdmin for the last enabled admin)."""
        accounts.set_role(self._sessions, username, role)

    def unlock(self, username: str) -> None:
        """Lift a lockout now; AccountError for an unknown user."""
        accounts.unlock(self._sessions, username)

    def change_own_password(self, username: str, current: str, new: str) -> None:
        """A user's own password change; WrongPassword when ``current`` is not right."""
        accounts.change_own_password(self._sessions, username, current, new)

    def remove_totp(self, username: str) -> None:
        """Take the second factor away (the user enrols again); AccountError if unknown."""
        accounts.remove_totp(self._sessions, username)

    def list_tokens(self, username: str | None = None) -> list[TokenInfo]:
        """API tokens (all, or one user's), newest first, never their secrets."""
        return accounts.list_tokens(self._sessions, username)

    def token_owner(self, token_id: str) -> str | None:
        """Whose token this is; ``None`` for an unknown id."""
        return accounts.token_owner(self._sessions, token_id)

    def ensure_admin(self, password: str | None = None) -> str | None:
        """Create the first admin when no account exists; its password, to print once."""
        return accounts.ensure_admin(self._sessions, password)

    def check_password(
        self,
        username: str,
        password: str,
        address: str = "",
        *,
        totp: str | None = None,
        admin_totp_required: bool = False,
        explain: bool = False,
    ) -> Principal | None:
        """The principal for valid credentials, else ``None`` (failures counted, lockout);
        SecondFactorRequired when a TOTP code is needed; with ``explain``, AccountLocked
        and AccountDisabled instead of ``None``."""
        return accounts.check_password(
            self._sessions,
            username,
            password,
            address,
            totp=totp,
            admin_totp_required=admin_totp_required,
            explain=explain,
        )

    def password_fingerprint(self, username: str) -> str:
        """What a session cookie binds to: it changes with the password."""
        return accounts.password_fingerprint(self._sessions, username)

    def start_session(self, username: str, hours: float) -> str:
        """A new server-side web session; its id, for the signed session cookie."""
        return accounts.start_session(self._sessions, username, hours)

    def end_session(self, session_id: str) -> str | None:
        """Log a web session out on the server; its user name, or ``None`` if not live."""
        return accounts.end_session(self._sessions, session_id)

    def ensure_sso_account(self, username: str, role: Role) -> None:
        """The local row of a single-sign-on user, role refreshed at every login."""
        accounts.ensure_sso_account(self._sessions, username, role)

    def create_token(
        self,
        username: str,
        name: str = "",
        expires_in: timedelta | None = None,
        scopes: frozenset[str] | None = None,
    ) -> str:
        """A new bearer token for ``username``, returned once (stored as a hash); ``scopes``
        (SMART) narrow it to reading the resource types they name."""
        return accounts.create_token(self._sessions, username, name, expires_in, scopes)

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; whether there was a live one."""
        return accounts.revoke_token(self._sessions, token_id)

    def enrol_totp(self, username: str) -> str:
        """A new TOTP secret for the account: the otpauth:// URI for an authenticator app."""
        return accounts.enrol_totp(self._sessions, username)

    # -- share grants ------------------------------------------------------------------

    def create_grant(
        self, study_uid: str, created_by: str, days: float, pin: str | None = None
    ) -> GrantInfo:
        """A share grant for one study; GrantError for a bad PIN."""
        return grants.create_grant(self._sessions, study_uid, created_by, days, pin)

    def list_grants(
        self,
        *,
        created_by: str | None = None,
        study_uid: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> tuple[list[GrantRow], int]:
        """Shares newest first (one creator's, one study's, or all) and how many match."""
        return grants.list_grants(
            self._sessions, created_by=created_by, study_uid=study_uid, limit=limit, offset=offset
        )

    def get_grant(self, grant_id: str) -> GrantInfo | None:
        return grants.get_grant(self._sessions, grant_id)

    def revoke_grant(self, grant_id: str) -> GrantInfo | None:
        """Revoke a grant; ``None`` when there is no such grant."""
        return grants.revoke_grant(self._sessions, grant_id)

    def open_grant(
        self, grant_id: str, pin: str | None = None, address: str = "", *, pin_checked: bool = False
    ) -> Principal:
        """The read-only principal of a live grant; else PinRequired, WrongPin (counted and
        committed), PinLimitReached (the link withdrawn) or GrantError."""
        return grants.open_grant(self._sessions, grant_id, pin, address, pin_checked=pin_checked)
