"""Login, logout, who-am-I, and share grants (create, QR code, revoke, open).

Share links are what lets a patient or a referring clinician give up film: the
result slip carries a QR code; opening it sets a grant cookie that lets the
browser see that one study, read-only, and is audited on every use.
"""

from __future__ import annotations

import html
import io
import ipaddress
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qs, quote

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth import accounts, grants
from pacs.auth.http import authorize, client_address, login_limiter, server_key, too_many
from pacs.auth.oidc import OidcClient, OidcError
from pacs.auth.policy import POLICY, permits
from pacs.auth.principal import ANONYMOUS, Kind, Principal, Role
from pacs.auth.ratelimit import FailureLimiter
from pacs.auth.sessions import GRANT_COOKIE, SESSION_COOKIE, sign, unsign
from pacs.i18n import negotiate, translate
from pacs.i18n.page import html_page

router = APIRouter()


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _pin_limiter(request: Request) -> FailureLimiter:
    limiter: FailureLimiter | None = getattr(request.app.state, "pin_limiter", None)
    if limiter is None:
        archive = _archive(request)
        limiter = archive.auth.failure_limiter(
            "pin", archive.settings.share_pin_failures_per_minute
        )
        request.app.state.pin_limiter = limiter
    return limiter


class Credentials(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    totp: str | None = Field(default=None, max_length=10)


def _name_limiter(request: Request) -> FailureLimiter:
    """Failed logins per user name, known or not: an unknown name "locks" like a real one.

    The database locks an account after ``MAX_FAILED_LOGINS`` failures; were
    an unknown name to answer "wrong password" forever, five guesses would tell
    a stranger which names exist. This limiter gives every name the same
    answer after as many failures within the lockout.
    """
    limiter: FailureLimiter | None = getattr(request.app.state, "name_limiter", None)
    if limiter is None:
        window = accounts.LOCKOUT.total_seconds()
        limiter = _archive(request).auth.failure_limiter("name", accounts.MAX_FAILED_LOGINS, window)
        request.app.state.name_limiter = limiter
    return limiter


def _login_refusal(request: Request, reason: str, **params: str) -> JSONResponse:
    """401 with the reason in the reader's language (``reason`` is also machine-readable)."""
    lang = negotiate(request.cookies, request.headers.get("accept-language"))
    body = {"detail": translate(f"accounts.{reason}", lang, **params), "reason": reason, **params}
    return JSONResponse(body, status_code=401)


@router.post("/login")
def login(credentials: Credentials, request: Request) -> JSONResponse:
    """Check a password (and one-time code) and set the HttpOnly session cookie.

    A locked account says so (and until when) whatever password is tried, and
    so does any name, known or not, after as many failures; a disabled account
    says so only after its right password. A guesser learns nothing more than
    "wrong" (see docs/SECURITY.md, "What the login form says").
    """
    archive = _archive(request)
    address = client_address(request)
    limiter = login_limiter(request)
    who = Principal(Kind.USER, credentials.username, Role.ANONYMOUS, address)
    wait = limiter.wait(address)
    if wait:
        archive.audit.record(who, "login", "failure: rate-limited")
        raise too_many(wait, "login attempts")
    try:
        principal = archive.auth.check_password(
            credentials.username,
            credentials.password,
            address,
            totp=credentials.totp,
            admin_totp_required=archive.settings.admin_totp_required,
            explain=True,
        )
    except accounts.SecondFactorRequired as exc:
        archive.audit.record(who, "login", "failure: second factor needed")
        return JSONResponse({"detail": str(exc), "totp_required": True}, status_code=401)
    except accounts.AccountLocked as exc:
        limiter.failed(address)
        archive.audit.record(who, "login", "failure: account locked")
        return _login_refusal(request, "locked", until=_minute(exc.until))
    except accounts.AccountDisabled:
        archive.audit.record(who, "login", "failure: account disabled")
        return _login_refusal(request, "disabled")
    if principal is None:
        limiter.failed(address)
        names = _name_limiter(request)
        names.failed(credentials.username)
        archive.audit.record(who, "login", "failure: bad credentials or locked")
        if wait := names.wait(credentials.username):
            until = datetime.now(UTC) + timedelta(seconds=wait)
            return _login_refusal(request, "locked", until=_minute(until))
        return _login_refusal(request, "wrong_credentials")
    archive.audit.record(principal, "login")
    response = JSONResponse({"username": principal.name, "role": str(principal.role)})
    _set_session_cookie(request, response, principal.name)
    return response


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _set_session_cookie(request: Request, response: Response, username: str) -> None:
    archive = _archive(request)
    fingerprint = archive.auth.password_fingerprint(username)
    session_id = archive.auth.start_session(username, archive.settings.session_hours)
    response.set_cookie(
        SESSION_COOKIE,
        sign(server_key(request), "session", {"u": username, "f": fingerprint, "s": session_id}),
        max_age=int(archive.settings.session_hours * 3600),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )


OIDC_COOKIE = "pacs_oidc"


def _oidc(request: Request) -> OidcClient:
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        try:
            client = OidcClient(_archive(request).settings)
        except OidcError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        request.app.state.oidc = client
    return client


def _callback_url(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


@router.get("/login/oidc")
def oidc_login(request: Request) -> Response:
    """Send the browser to the identity provider (state, nonce and PKCE kept in a signed cookie)."""
    try:
        start = _oidc(request).start(_callback_url(request))
    except OidcError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
    response = RedirectResponse(start.url, status_code=303)
    pending = {"s": start.state, "n": start.nonce, "v": start.verifier}
    response.set_cookie(
        OIDC_COOKIE,
        sign(server_key(request), "oidc", pending),
        max_age=600,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/login/oidc",
    )
    return response


@router.get("/login/oidc/callback", name="oidc_callback")
def oidc_callback(request: Request, code: str = "", state: str = "") -> Response:
    archive = _archive(request)
    pending = unsign(server_key(request), "oidc", request.cookies.get(OIDC_COOKIE, ""), 600)
    if not pending or not code or not secrets.compare_digest(str(pending.get("s")), state):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "sign-on expired or forged; start again")
    client = _oidc(request)
    try:
        claims = client.finish(code, _callback_url(request), str(pending["v"]), str(pending["n"]))
    except OidcError as exc:
        archive.audit.record(ANONYMOUS, "login", f"failure: sso: {exc}")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from exc
    username, role = client.username(claims), client.role(claims)
    who = Principal(Kind.USER, username, role or Role.ANONYMOUS, client_address(request))
    if role is None:
        archive.audit.record(who, "login", "failure: sso user has no PACS role")
        raise HTTPException(status.HTTP_403_FORBIDDEN, "your account has no role in this PACS")
    archive.auth.ensure_sso_account(username, role)
    archive.audit.record(who, "login", detail="sso")
    response = RedirectResponse("/viewer/", status_code=303)
    _set_session_cookie(request, response, username)
    response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the web session on the server (a copied cookie stops working), clear the cookies."""
    archive = _archive(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    payload = cookie and unsign(
        server_key(request), "session", cookie, archive.settings.session_hours * 3600
    )
    if payload:
        username = archive.auth.end_session(str(payload.get("s", "")))
        if username is not None:
            who = Principal(Kind.USER, username, Role.ANONYMOUS, client_address(request))
            archive.audit.record(who, "logout")
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(GRANT_COOKIE, path="/")
    return response


@router.get("/api/me")
def me(principal: Annotated[Principal, Depends(authorize("self"))]) -> dict[str, object]:
    """Who is asking, and which policy operations they may perform (the web app shows only
    the pages those allow; the server checks every request anyway)."""
    return {
        "name": principal.name,
        "kind": str(principal.kind),
        "role": str(principal.role),
        "study_uid": principal.study_uid,
        "operations": sorted(op for op in POLICY if permits(principal, op)),
    }


class PasswordChange(BaseModel):
    current: str = Field(max_length=1024)
    new: str = Field(max_length=1024)


@router.post("/api/me/password", status_code=204)
def change_own_password(
    request: Request,
    principal: Annotated[Principal, Depends(authorize("self"))],
    body: PasswordChange,
) -> Response:
    """Change one's own password: the current one is needed, the policy applies.

    A wrong current password counts against the address like a failed login.
    Every other session ends (the cookie binds the password); a browser
    that asked gets a fresh session cookie and stays logged in.
    """
    archive = _archive(request)
    if principal.kind not in (Kind.USER, Kind.TOKEN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an account has a password")
    address = client_address(request)
    limiter = login_limiter(request)
    if wait := limiter.wait(address):
        archive.audit.record(principal, "password-change", "failure: rate-limited")
        raise too_many(wait, "password attempts")
    lang = negotiate(request.cookies, request.headers.get("accept-language"))
    try:
        archive.auth.change_own_password(principal.name, body.current, body.new)
    except accounts.WrongPassword as exc:
        limiter.failed(address)
        archive.audit.record(principal, "password-change", "failure: wrong current password")
        detail = translate("accounts.wrong_current_password", lang)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail) from exc
    except accounts.AccountError as exc:
        archive.audit.record(principal, "password-change", f"failure: {exc}")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    archive.audit.record(principal, "password-change")
    response = Response(status_code=204)
    if principal.kind is Kind.USER and request.cookies.get(SESSION_COOKIE):
        _set_session_cookie(request, response, principal.name)
    return response


class ShareRequest(BaseModel):
    days: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    pin: str | None = None


def _share_base(request: Request) -> str:
    """Where share links point: ``PACS_PUBLIC_BASE_URL``, else only a loopback Host.

    The Host header is the client's to choose: a link built from a forged one
    would send the patient (and the PIN) to the forger's site. Raises 409
    when no public URL is configured and the request did not come to loopback.
    """
    configured = _archive(request).settings.public_base_url
    if configured:
        return configured
    host = request.url.hostname or ""
    if host == "localhost" or _loopback(host):
        return str(request.base_url)
    raise HTTPException(
        status.HTTP_409_CONFLICT,
        "share links need the archive's public address: set PACS_PUBLIC_BASE_URL",
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _share_url(request: Request, grant_id: str) -> str:
    base = _share_base(request)
    token = grants.link_token(server_key(request), grant_id)
    return f"{base.rstrip('/')}/s/{quote(token, safe='.-_')}"


@router.post("/api/studies/{study_uid}/shares", status_code=201)
def create_share(
    study_uid: str,
    body: ShareRequest,
    request: Request,
    principal: Annotated[Principal, Depends(authorize("share"))],
) -> dict[str, str | bool]:
    """Create a link (and QR code) that opens this one study, read-only, until it expires."""
    archive = _archive(request)
    instances = archive.locate(study_uid=study_uid)
    if not instances:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such study")
    _share_base(request)  # refuse before a grant exists that no safe link could name
    settings = archive.settings
    days = min(body.days or settings.share_default_days, settings.share_max_days)
    try:
        info = archive.auth.create_grant(study_uid, principal.name, days, body.pin)
    except grants.GrantError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    archive.audit.record(
        principal,
        "share-create",
        patient_id=instances[0].patient_id,
        study_uid=study_uid,
        detail=f"grant {info.grant_id} until {info.expires_at.isoformat()}",
    )
    base = f"/api/shares/{info.grant_id}"
    return {
        "grant_id": info.grant_id,
        "url": _share_url(request, info.grant_id),
        "expires_at": info.expires_at.isoformat(),
        "pin": info.has_pin,
        "qr_png": f"{base}/qr.png",
        "qr_svg": f"{base}/qr.svg",
    }


class ShareOut(BaseModel):
    """A share link as its creator or an admin lists it (never its URL's signature or PIN)."""

    grant_id: str
    study_uid: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    state: str = Field(description="active, expired, revoked, or withdrawn (too many wrong PINs)")
    revoked_at: datetime | None
    pin: bool
    failed_pins: int
    uses: int = Field(description="times the link was opened")
    last_used_at: datetime | None


class ShareList(BaseModel):
    total: int
    limit: int
    offset: int
    shares: list[ShareOut]


@router.get("/api/shares")
def list_shares(
    request: Request,
    principal: Annotated[Principal, Depends(authorize("share"))],
    study_uid: Annotated[str | None, Query(max_length=64)] = None,
    created_by: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> ShareList:
    """Share links newest first, with their uses: an admin sees every one, others their own."""
    archive = _archive(request)
    if principal.role is not Role.ADMIN:
        if created_by not in (None, principal.name):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin lists others' shares")
        created_by = principal.name
    rows, total = archive.auth.list_grants(
        created_by=created_by, study_uid=study_uid, limit=limit, offset=offset
    )
    uses = archive.audit.usage("share-open", [row.grant_id for row in rows])
    archive.audit.record(
        principal, "share-list", study_uid=study_uid, detail=str(request.url.query)[:1000]
    )
    return ShareList(
        total=total,
        limit=limit,
        offset=offset,
        shares=[
            ShareOut(
                grant_id=row.grant_id,
                study_uid=row.study_uid,
                created_by=row.created_by,
                created_at=row.created_at,
                expires_at=row.expires_at,
                state=row.state,
                revoked_at=row.revoked_at,
                pin=row.has_pin,
                failed_pins=row.failed_pins,
                uses=uses.get(row.grant_id, (0, None))[0],
                last_used_at=uses.get(row.grant_id, (0, None))[1],
            )
            for row in rows
        ],
    )


def _live_grant(request: Request, grant_id: str) -> grants.GrantInfo:
    info = _archive(request).auth.get_grant(grant_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such share")
    return info


@router.get(
    "/api/shares/{grant_id}/qr.{fmt}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
def share_qr(
    grant_id: str,
    fmt: str,
    request: Request,
    principal: Annotated[Principal, Depends(authorize("share"))],
) -> Response:
    """The share link as a QR code to print on the result slip (PNG or SVG)."""
    _live_grant(request, grant_id)
    url = _share_url(request, grant_id)
    if fmt == "png":
        buffer = io.BytesIO()
        qrcode.make(url, box_size=8, border=2).save(buffer)
        return Response(buffer.getvalue(), media_type="image/png")
    if fmt == "svg":
        svg = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage).to_string()
        return Response(svg, media_type="image/svg+xml")
    raise HTTPException(status.HTTP_404_NOT_FOUND, "QR codes come as .png or .svg")


@router.delete("/api/shares/{grant_id}", status_code=204)
def revoke_share(
    grant_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(authorize("share"))],
) -> Response:
    """Withdraw a link: only the user who created it, or an admin."""
    archive = _archive(request)
    found = archive.auth.get_grant(grant_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such share")
    if found.created_by != principal.name and principal.role is not Role.ADMIN:
        archive.audit.record(
            principal, "share-revoke", "failure: not the creator", study_uid=found.study_uid
        )
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only the creator of a share or an admin may revoke it"
        )
    info = archive.auth.revoke_grant(grant_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such share")
    archive.audit.record(principal, "share-revoke", study_uid=info.study_uid, detail=grant_id)
    return Response(status_code=204)


def _lang(request: Request) -> str:
    return negotiate(request.cookies, request.headers.get("accept-language"))


def _share_page(request: Request, body: str, status_code: int, **headers: str) -> HTMLResponse:
    lang = _lang(request)
    page = html_page(lang, translate("share.title", lang), body)
    return HTMLResponse(page, status_code=status_code, headers=headers or None)


def _pin_form(request: Request, token: str, message_key: str, **params: object) -> HTMLResponse:
    """The PIN form (401), in the holder's language; it posts back to this same link."""
    lang = _lang(request)
    message = html.escape(translate(f"share.{message_key}", lang, **params))
    body = (
        f"<h1>{html.escape(translate('share.title', lang))}</h1>"
        f"<p class='error' role='alert'>{message}</p>"
        f"<form method='post' action='{html.escape(quote(token, safe='.-_'), quote=True)}'>"
        f"<label>{html.escape(translate('share.pin_label', lang))} "
        "<input name='pin' inputmode='numeric' autocomplete='off' required></label> "
        f"<button>{html.escape(translate('share.open', lang))}</button></form>"
    )
    return _share_page(request, body, status.HTTP_401_UNAUTHORIZED)


def _gone(request: Request, reason: str) -> HTMLResponse:
    """The link cannot open (withdrawn, expired, not valid): 410 and why, in words."""
    lang = _lang(request)
    text = html.escape(translate(f"share.{reason}", lang))
    body = f"<h1>{html.escape(translate('share.title', lang))}</h1><p role='alert'>{text}</p>"
    return _share_page(request, body, status.HTTP_410_GONE)


def _rate_limited(request: Request, wait: float) -> HTMLResponse:
    lang = _lang(request)
    seconds = int(wait) + 1
    text = html.escape(translate("errors.rate_limited", lang, seconds=seconds))
    body = f"<h1>{html.escape(translate('share.title', lang))}</h1><p role='alert'>{text}</p>"
    return _share_page(
        request, body, status.HTTP_429_TOO_MANY_REQUESTS, **{"Retry-After": str(seconds)}
    )


def _viewer_url(study_uid: str) -> str:
    return f"/viewer/?StudyInstanceUIDs={quote(study_uid)}"


def _open(request: Request, token: str, pin: str | None) -> Response:
    archive = _archive(request)
    address = client_address(request)
    key = server_key(request)
    try:
        grant_id = grants.grant_id_from_token(key, token)
    except grants.GrantError as exc:
        return _gone(request, exc.reason)
    limiter = _pin_limiter(request)
    keys = (f"link:{grant_id}", f"address:{address}")
    who = Principal(Kind.GRANT, grant_id, Role.ANONYMOUS, address)
    if pin is not None and (wait := limiter.wait(*keys)):
        archive.audit.record(who, "share-open", "failure: PIN attempts rate-limited")
        return _rate_limited(request, wait)
    try:
        principal = archive.auth.open_grant(grant_id, pin, address)
    except grants.WrongPin as exc:
        limiter.failed(*keys)
        outcome = f"failure: wrong PIN ({exc.failures} of {grants.MAX_PIN_FAILURES})"
        archive.audit.record(who, "share-open", outcome, study_uid=exc.study_uid)
        return _pin_form(
            request, token, "wrong_pin", failures=exc.failures, limit=grants.MAX_PIN_FAILURES
        )
    except grants.PinRequired:
        return _pin_form(request, token, "pin_required")
    except grants.PinLimitReached as exc:
        limiter.failed(*keys)
        outcome = "failure: wrong PIN, link withdrawn"
        archive.audit.record(who, "share-open", outcome, study_uid=exc.study_uid)
        return _gone(request, exc.reason)
    except grants.GrantError as exc:
        return _gone(request, exc.reason)
    archive.audit.record(principal, "share-open", study_uid=principal.study_uid)
    assert principal.study_uid is not None
    response = RedirectResponse(_viewer_url(principal.study_uid), status_code=303)
    response.set_cookie(
        GRANT_COOKIE,
        sign(key, "grant", {"g": grant_id}),
        max_age=archive.settings.share_max_days * 86400,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )
    return response


@router.get("/s/{token}")
def open_share(token: str, request: Request) -> Response:
    return _open(request, token, None)


@router.post("/s/{token}")
async def open_share_with_pin(token: str, request: Request) -> Response:
    body = (await request.body())[:1024].decode("utf-8", "replace")
    pin = (parse_qs(body).get("pin") or [""])[0]
    return _open(request, token, pin)
