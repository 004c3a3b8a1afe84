"""``/api/users`` and ``/api/tokens``: accounts run from the browser.

Admins only (operation ``admin``); a user's own password change is
``/api/me/password`` in :mod:`pacs.auth.routes`. Every change is
audited; secrets (a generated password, a TOTP enrolment, a new API token)
are in the answer once and never stored in the clear. Bad input answers 400
with the rule it broke (the password policy's reason included), an unknown
user 404, a taken name or a change that would leave no enabled admin 409.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta
from typing import Annotated

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.accounts import AccountInfo, TokenInfo
from pacs.auth.http import authorize
from pacs.auth.passwords import random_password
from pacs.auth.principal import Principal
from pacs.auth.scopes import ScopeError
from pacs.auth.scopes import parse as parse_scopes

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]
Username = Annotated[str, Path(min_length=1, max_length=64)]
TokenId = Annotated[str, Path(min_length=1, max_length=32)]
ROLES = "^(admin|radiologist|clinician|integration|auditor)$"


class UserOut(BaseModel):
    """An account as the administration page shows it; ``locked_until`` only while locked."""

    username: str
    role: str
    disabled: bool
    created_at: datetime
    failed_logins: int = Field(description="failed logins since the last success or lock")
    locked_until: datetime | None
    totp_enrolled: bool
    sso: bool = Field(description="signs in through the identity provider, no local password")


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    role: str = Field(pattern=ROLES)
    password: str | None = Field(
        default=None, max_length=1024, description="left out: one is generated and returned once"
    )


class UserChange(BaseModel):
    role: str | None = Field(default=None, pattern=ROLES)
    disabled: bool | None = None


class PasswordReset(BaseModel):
    password: str | None = Field(
        default=None, max_length=1024, description="left out: one is generated and returned once"
    )


class PasswordOut(BaseModel):
    username: str
    password: str | None = Field(description="the generated password, shown this once")


class UserCreated(UserOut):
    password: str | None = Field(description="the generated password, shown this once")


class TotpEnrolment(BaseModel):
    """A new second factor: scan the QR code with an authenticator app (shown once)."""

    username: str
    otpauth_uri: str
    qr_png: str = Field(description="data: URI of a PNG QR code of otpauth_uri")
    qr_svg: str = Field(description="an SVG QR code of otpauth_uri")


class TokenOut(BaseModel):
    token_id: str
    username: str
    name: str
    state: str = Field(description="active, expired or revoked")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="to the minute: use is recorded coarsely")
    scopes: str | None = Field(
        default=None, description="SMART scopes (space-separated); null: what the role permits"
    )


class TokenCreate(BaseModel):
    name: str = Field(default="", max_length=128)
    days: float | None = Field(default=None, gt=0, le=3650, allow_inf_nan=False)
    scopes: str | None = Field(
        default=None,
        max_length=1000,
        description="SMART scopes for a client app, e.g. 'system/ImagingStudy.rs "
        "user/DiagnosticReport.read': the token may then only read those resource types",
    )


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token, shown this once")


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _user(info: AccountInfo) -> UserOut:
    return UserOut(
        username=info.username,
        role=str(info.role),
        disabled=info.disabled,
        created_at=info.created_at,
        failed_logins=info.failed_logins,
        locked_until=info.locked_until,
        totp_enrolled=info.totp_enrolled,
        sso=info.sso,
    )


def _token(info: TokenInfo) -> TokenOut:
    return TokenOut(
        token_id=info.token_id,
        username=info.username,
        name=info.name,
        state=info.state,
        created_at=info.created_at,
        expires_at=info.expires_at,
        revoked_at=info.revoked_at,
        last_used_at=info.last_used_at,
        scopes=info.scopes,
    )


def _refusal(exc: accounts.AccountError) -> HTTPException:
    """The HTTP status of an account error: 404 unknown, 409 conflict, else 400."""
    if isinstance(exc, accounts.UnknownAccount):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, accounts.DuplicateAccount | accounts.LastAdmin):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    return HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))


def _account(archive: Archive, username: str) -> AccountInfo:
    try:
        return archive.auth.get_account(username)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc


@router.get("/api/users")
def list_users(request: Request, principal: Admin) -> list[UserOut]:
    """Every account by name, with its lock state and second factor."""
    return [_user(info) for info in _archive(request).auth.list_accounts()]


@router.post("/api/users", status_code=status.HTTP_201_CREATED)
def create_user(request: Request, principal: Admin, body: UserCreate) -> UserCreated:
    """A new account; without a password one is generated and returned this once."""
    archive = _archive(request)
    password = body.password or random_password()
    try:
        archive.auth.create_account(body.username, password, body.role)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    archive.audit.record(principal, "user-create", detail=f"{body.username} as {body.role}")
    info = _user(_account(archive, body.username))
    return UserCreated(**info.model_dump(), password=None if body.password else password)


@router.get("/api/users/{username}")
def get_user(request: Request, principal: Admin, username: Username) -> UserOut:
    return _user(_account(_archive(request), username))


@router.patch("/api/users/{username}")
def change_user(
    request: Request, principal: Admin, username: Username, body: UserChange
) -> UserOut:
    """Change the role and/or disable or enable; 409 for the last enabled admin."""
    archive = _archive(request)
    try:
        if body.role is not None:
            archive.auth.set_role(username, body.role)
        if body.disabled is not None:
            archive.auth.set_disabled(username, body.disabled)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    changes = []
    if body.role is not None:
        changes.append(f"role {body.role}")
    if body.disabled is not None:
        changes.append("disabled" if body.disabled else "enabled")
    archive.audit.record(principal, "user-change", detail=f"{username}: {', '.join(changes)}")
    return _user(_account(archive, username))


@router.post("/api/users/{username}/unlock")
def unlock_user(request: Request, principal: Admin, username: Username) -> UserOut:
    """Lift a lockout now and forget the failed logins counted so far."""
    archive = _archive(request)
    before = _account(archive, username)
    try:
        archive.auth.unlock(username)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    was = f"locked until {before.locked_until.isoformat()}" if before.locked_until else "unlocked"
    archive.audit.record(principal, "user-unlock", detail=f"{username} ({was})")
    return _user(_account(archive, username))


@router.post("/api/users/{username}/password")
def reset_password(
    request: Request, principal: Admin, username: Username, body: PasswordReset
) -> PasswordOut:
    """Set a new password (the policy applies), ending the user's sessions and any lock."""
    archive = _archive(request)
    password = body.password or random_password()
    try:
        archive.auth.set_password(username, password)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    archive.audit.record(principal, "user-password-reset", detail=username)
    return PasswordOut(username=username, password=None if body.password else password)


@router.post("/api/users/{username}/totp")
def reset_totp(request: Request, principal: Admin, username: Username) -> TotpEnrolment:
    """A new second factor replaces the old one: the otpauth URI and its QR code, once."""
    archive = _archive(request)
    try:
        uri = archive.auth.enrol_totp(username)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    archive.audit.record(principal, "user-totp-reset", detail=username)
    png = io.BytesIO()
    qrcode.make(uri, box_size=6, border=2).save(png)
    svg = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage).to_string()
    return TotpEnrolment(
        username=username,
        otpauth_uri=uri,
        qr_png="data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
        qr_svg=svg.decode() if isinstance(svg, bytes) else str(svg),
    )


@router.delete("/api/users/{username}/totp", status_code=status.HTTP_204_NO_CONTENT)
def remove_totp(request: Request, principal: Admin, username: Username) -> Response:
    """Take the second factor away (a lost phone); the user logs in with the password."""
    archive = _archive(request)
    try:
        archive.auth.remove_totp(username)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    archive.audit.record(principal, "user-totp-remove", detail=username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/users/{username}/tokens")
def list_user_tokens(request: Request, principal: Admin, username: Username) -> list[TokenOut]:
    """One user's API tokens, newest first, with their last use."""
    try:
        found = _archive(request).auth.list_tokens(username)
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    return [_token(info) for info in found]


@router.post("/api/users/{username}/tokens", status_code=status.HTTP_201_CREATED)
def create_user_token(
    request: Request, principal: Admin, username: Username, body: TokenCreate
) -> TokenCreated:
    """A new API token for a script acting as ``username``: the secret is shown once."""
    archive = _archive(request)
    expires_in = timedelta(days=body.days) if body.days else None
    try:
        scopes = parse_scopes(body.scopes) if body.scopes is not None else None
        token = archive.auth.create_token(username, body.name, expires_in, scopes)
    except ScopeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    except accounts.AccountError as exc:
        raise _refusal(exc) from exc
    token_id = token.removeprefix("pacs_").partition("_")[0]
    archive.audit.record(principal, "token-create", detail=f"{token_id} for {username}")
    info = next(t for t in archive.auth.list_tokens(username) if t.token_id == token_id)
    return TokenCreated(**_token(info).model_dump(), token=token)


@router.get("/api/tokens")
def list_tokens(request: Request, principal: Admin) -> list[TokenOut]:
    """Every API token of every user, newest first: find a lost token id here."""
    return [_token(info) for info in _archive(request).auth.list_tokens()]


@router.delete("/api/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(request: Request, principal: Admin, token_id: TokenId) -> Response:
    """Revoke a token by id (revoking it again is harmless); 404 for an unknown id."""
    archive = _archive(request)
    owner = archive.auth.token_owner(token_id)
    if owner is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    if archive.auth.revoke_token(token_id):
        archive.audit.record(principal, "token-revoke", detail=f"{token_id} of {owner}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
