"""SMART on FHIR for a client app (App Launch 2.0): what the server supports, at
``/fhir/.well-known/smart-configuration``, and tokens by the OAuth 2.0 client credentials
grant at ``/fhir/auth/token``.

A client app is an integration account: its user name is the ``client_id``, its password
the ``client_secret`` (HTTP Basic, or both in the form), checked like any password (Argon2,
lockout, the failure limiter per address, only over TLS or loopback). The answer is an
ordinary API token that expires after ``fhir_token_minutes`` and carries the scopes
granted (:mod:`pacs.auth.scopes`): it may only read the resource types they name. There
is no authorization endpoint (no EHR or standalone launch): an app that acts for a person
is given a per-study link by the HIS (``POST /api/ehr/links``) instead.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.http import client_address, login_limiter, secure_transport
from pacs.auth.principal import Kind, Principal, Role
from pacs.auth.scopes import RESOURCE_TYPES, ScopeError
from pacs.auth.scopes import parse as parse_scopes
from pacs.auth.scopes import text as scope_text
from pacs.settings import Settings

BaseUrl = Callable[[Request, Settings], str]
PREFIX = "/fhir"
TOKEN_PATH = "/auth/token"
MAX_BODY = 4096
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def scopes_supported() -> list[str]:
    """Every scope a client may ask (v2 permissions; v1 ``.read`` is accepted as ``.rs``)."""
    kinds = [*RESOURCE_TYPES, "*"]
    return [f"{context}/{kind}.rs" for context in ("system", "user") for kind in kinds]


def configuration(fhir_base: str) -> dict[str, Any]:
    """The SMART configuration document (App Launch 2.0, 2.1: well-known URIs)."""
    return {
        "token_endpoint": fhir_base + TOKEN_PATH,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes_supported(),
        "response_types_supported": [],
        "capabilities": ["client-confidential-symmetric", "permission-v1", "permission-v2"],
    }


def _oauth_error(status_code: int, error: str, description: str) -> JSONResponse:
    """An OAuth 2.0 error answer (RFC 6749 5.2)."""
    headers = dict(NO_STORE)
    if status_code == 401:
        headers["WWW-Authenticate"] = 'Basic realm="PACS"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code, headers=headers
    )


async def _form(request: Request) -> dict[str, str] | None:
    """The form fields of a token request (RFC 6749 4.4.2), read up to ``MAX_BODY`` bytes;
    None for another content type or a longer body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        fields = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=16)
    except ValueError:  # more fields than any token request has
        return None
    return dict(fields)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """(client_id, client_secret) from HTTP Basic (RFC 6749 2.3.1) or the form."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote(client_id), unquote(secret)) if sep else None
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    return None


def _check_client(request: Request, client_id: str, secret: str) -> Principal | JSONResponse:
    """The integration account behind the credentials, or the OAuth error to answer."""
    archive = _archive(request)
    address = client_address(request)
    limiter = login_limiter(request)
    refused = Principal(Kind.TOKEN, client_id[:64], Role.ANONYMOUS, address)
    if limiter.wait(address):
        archive.audit.record(refused, "token-issue", "failure: too many failures")
        return _oauth_error(429, "invalid_client", "too many failed attempts; try again later")
    try:
        principal = archive.auth.check_password(client_id[:64], secret[:1024], address)
    except accounts.SecondFactorRequired:
        principal = None  # a person's account: a client app has no one-time code to give
    if principal is None or principal.role is not Role.INTEGRATION:
        limiter.failed(address)
        archive.audit.record(refused, "token-issue", "failure: client authentication")
        return _oauth_error(
            401, "invalid_client", "unknown client, wrong secret, or not an integration account"
        )
    return principal


def create_router(base_url: BaseUrl) -> APIRouter:
    """``/fhir/.well-known/smart-configuration`` and ``/fhir/auth/token``."""
    router = APIRouter(prefix=PREFIX)

    @router.get("/.well-known/smart-configuration")
    def smart_configuration(request: Request) -> JSONResponse:
        """What a client app needs to get a token: no patient data, read before logging in."""
        base = base_url(request, _archive(request).settings) + PREFIX
        return JSONResponse(configuration(base))

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        """An access token for a client app (client credentials grant, form-encoded)."""
        if not secure_transport(request):
            return _oauth_error(400, "invalid_request", "use HTTPS: the secret travels here")
        form = await _form(request)
        if form is None:
            return _oauth_error(
                400, "invalid_request", f"send application/x-www-form-urlencoded, {MAX_BODY} bytes"
            )
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials")
        credentials = _client_credentials(request, form)
        if credentials is None:
            return _oauth_error(401, "invalid_client", "client authentication is required")
        client = _check_client(request, *credentials)
        if isinstance(client, JSONResponse):
            return client
        archive = _archive(request)
        try:
            granted = parse_scopes(form.get("scope", ""))
        except ScopeError as exc:
            archive.audit.record(client, "token-issue", f"failure: {exc}")
            return _oauth_error(400, "invalid_scope", str(exc))
        minutes = archive.settings.fhir_token_minutes
        issued = archive.auth.create_token(
            client.name, "SMART client credentials", timedelta(minutes=minutes), granted
        )
        token_id = issued.removeprefix("pacs_").partition("_")[0]
        archive.audit.record(client, "token-issue", detail=f"{token_id}: {scope_text(granted)}")
        body = {
            "access_token": issued,
            "token_type": "bearer",
            "expires_in": minutes * 60,
            "scope": scope_text(granted),
        }
        return JSONResponse(body, headers=NO_STORE)

    return router
