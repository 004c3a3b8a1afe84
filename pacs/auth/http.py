"""HTTP authentication and authorization as one FastAPI dependency per operation.

``authorize("retrieve")`` reads the credentials (bearer API token, HTTP
Basic, the web UI's session cookie or a share link's grant cookie), checks the
policy table and returns the :class:`Principal`, which routes hand to the
audit trail. Basic sends the password with every request, so it is refused
over plain HTTP except from the loopback interface.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from dataclasses import replace

from fastapi import HTTPException, Request, status

from pacs.auth import accounts, grants
from pacs.auth.basic_cache import BasicCache
from pacs.auth.keys import signing_key
from pacs.auth.policy import POLICY, permits
from pacs.auth.principal import ANONYMOUS, Principal
from pacs.auth.sessions import GRANT_COOKIE, SESSION_COOKIE, unsign

CHALLENGE = {"WWW-Authenticate": 'Basic realm="PACS", charset="UTF-8"'}


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def _secure_transport(request: Request) -> bool:
    """TLS to us, or the loopback interface (where nothing can sniff the password)."""
    return request.url.scheme == "https" or _is_loopback(client_address(request))


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers=CHALLENGE)


def _from_page_script(request: Request) -> bool:
    """A fetch/XHR from a web page (the viewer): a Basic challenge would pop up the browser's
    password dialog in front of the page's own login form, or hang a headless browser."""
    mode = request.headers.get("sec-fetch-mode")
    return mode is not None and mode != "navigate"


def authenticate(request: Request) -> Principal:
    """The principal behind the request's credentials; anonymous when it carries none."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    archive = request.app.state.archive
    address = client_address(request)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    principal: Principal | None = ANONYMOUS
    if not header:
        principal = _from_cookies(request, address) or ANONYMOUS
    elif scheme.lower() == "bearer":
        principal = accounts.check_token(archive.sessions, credentials.strip(), address)
        if principal is None:
            raise _unauthorized("invalid, expired or revoked token")
    elif scheme.lower() == "basic":
        if not _secure_transport(request):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "HTTP Basic is refused over plain HTTP; use HTTPS"
            )
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _unauthorized("malformed Basic credentials") from exc
        username, _, password = decoded.partition(":")
        cache = _basic_cache(request)
        principal = cache.get(username, password)
        if principal is None:
            try:
                principal = accounts.check_password(archive.sessions, username, password, address)
            except accounts.SecondFactorRequired as exc:
                raise _unauthorized(f"{exc}; scripts use an API token instead") from exc
            if principal is None:
                raise _unauthorized("wrong user name or password, or account locked")
            cache.put(username, password, principal)
        principal = replace(principal, address=address)
    elif header:
        raise _unauthorized(f"unsupported authorization scheme {scheme!r}")
    assert principal is not None
    request.state.principal = principal
    return principal


def _basic_cache(request: Request) -> BasicCache:
    cache: BasicCache | None = getattr(request.app.state, "basic_cache", None)
    if cache is None:
        cache = BasicCache(server_key(request))
        request.app.state.basic_cache = cache
    return cache


def server_key(request: Request) -> str:
    key: str | None = getattr(request.app.state, "signing_key", None)
    if key is None:
        key = signing_key(request.app.state.archive.settings)
        request.app.state.signing_key = key
    return key


def _from_cookies(request: Request, address: str) -> Principal | None:
    """A logged-in browser (session cookie) or a share-link holder (grant cookie)."""
    archive = request.app.state.archive
    settings = archive.settings
    session_cookie = request.cookies.get(SESSION_COOKIE)
    if session_cookie:
        max_age = settings.session_hours * 3600
        payload = unsign(server_key(request), "session", session_cookie, max_age)
        if payload is not None:
            principal = accounts.check_session_account(
                archive.sessions, str(payload.get("u")), str(payload.get("f")), address
            )
            if principal is not None:
                return principal
    grant_cookie = request.cookies.get(GRANT_COOKIE)
    if grant_cookie:
        max_age = settings.share_max_days * 86400
        payload = unsign(server_key(request), "grant", grant_cookie, max_age)
        if payload is not None:
            try:
                return grants.open_grant(
                    archive.sessions, str(payload.get("g")), address=address, pin_checked=True
                )
            except grants.GrantError:
                return None
    return None


def authorize(operation: str) -> Callable[[Request], Principal]:
    """A dependency that lets the request through only if the policy permits ``operation``."""
    if operation not in POLICY:
        raise ValueError(f"operation {operation!r} is not in the policy table")

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not permits(principal, operation):
            if not principal.is_authenticated:
                if _from_page_script(request):
                    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required")
                raise _unauthorized("authentication required")
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {principal.role} may not {operation}"
            )
        return principal

    dependency.__name__ = f"authorize_{operation}"
    dependency.operation = operation  # type: ignore[attr-defined]  # read by the route audit test
    return dependency
