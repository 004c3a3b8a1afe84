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
from pacs.auth.principal import ANONYMOUS, Kind, Principal, Role
from pacs.auth.ratelimit import FailureLimiter
from pacs.auth.scopes import allows
from pacs.auth.sessions import GRANT_COOKIE, SESSION_COOKIE, unsign

CHALLENGE = {"WWW-Authenticate": 'Basic realm="PACS", charset="UTF-8"'}


def _trusted_proxy(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` is a proxy listed in ``PACS_FORWARDED_ALLOW_IPS`` (address or network)."""
    if "*" in allowed or host in allowed:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if "/" in entry and address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(request: Request) -> str:
    """Who is asking: the peer, or behind a trusted TLS proxy the client it forwards for.

    Behind ``PACS_BEHIND_TLS_PROXY`` every request comes from the proxy; keying
    rate limits and audit records on it would put all users in one bucket.
    The proxy (listed in ``PACS_FORWARDED_ALLOW_IPS``) appends the client to
    ``X-Forwarded-For``: the rightmost entry that is not itself a trusted
    proxy is the client (entries to its left are whatever the client sent).
    """
    peer = request.client.host if request.client else ""
    settings = request.app.state.archive.settings
    if not settings.behind_tls_proxy or not _trusted_proxy(peer, settings.forwarded_allow_ips):
        return peer
    hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted_proxy(hop, settings.forwarded_allow_ips):
            return hop[:64]
    return peer


def login_limiter(request: Request) -> FailureLimiter:
    """Failed credentials per client address, shared by the login form, Basic and tokens."""
    limiter: FailureLimiter | None = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        archive = request.app.state.archive
        limiter = archive.auth.failure_limiter("login", archive.settings.login_attempts_per_minute)
        request.app.state.login_limiter = limiter
    return limiter


def too_many(wait: float, what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"too many failed {what}; try again later",
        headers={"Retry-After": str(int(wait) + 1)},
    )


def _limit(request: Request, address: str, scheme: str) -> None:
    """Refuse (429, audited) a credential check from an address with too many failures."""
    wait = login_limiter(request).wait(address)
    if wait:
        who = Principal(Kind.ANONYMOUS, "", Role.ANONYMOUS, address)
        reason = f"failure: {scheme.lower()} refused, too many failures from this address"
        request.app.state.archive.audit.record(who, "login", reason)
        raise too_many(wait, "credentials from this address")


def _refuse_credentials(
    request: Request, address: str, who: str, kind: Kind, reason: str
) -> HTTPException:
    """Count a failed credential against the address, audit it, and say 401."""
    login_limiter(request).failed(address)
    principal = Principal(kind, who[:64], Role.ANONYMOUS, address)
    request.app.state.archive.audit.record(principal, "login", f"failure: {reason}")
    return _unauthorized(reason)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def secure_transport(request: Request) -> bool:
    """TLS to us, or the loopback interface (where nothing can sniff the password)."""
    peer = request.client.host if request.client else ""
    return request.url.scheme == "https" or _is_loopback(peer)


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
        # A valid token (256 random bits) cannot be a guess: it is checked first (a hash
        # and a lookup, no Argon2), and only a failure meets the limiter.
        token = credentials.strip()
        principal = accounts.check_token(archive.sessions, token, address)
        if principal is None:
            _limit(request, address, scheme)
            token_id = token.removeprefix("pacs_").partition("_")[0]
            raise _refuse_credentials(
                request, address, token_id, Kind.TOKEN, "invalid, expired or revoked token"
            )
    elif scheme.lower() == "basic":
        if not secure_transport(request):
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
            _limit(request, address, scheme)  # before the Argon2 check, not after
            try:
                principal = accounts.check_password(archive.sessions, username, password, address)
            except accounts.SecondFactorRequired as exc:
                raise _unauthorized(f"{exc}; scripts use an API token instead") from exc
            if principal is None:
                raise _refuse_credentials(
                    request,
                    address,
                    username,
                    Kind.USER,
                    "wrong user name or password, or account locked",
                )
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
                archive.sessions,
                str(payload.get("u")),
                str(payload.get("f")),
                address,
                str(payload.get("s", "")),
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


# What a scoped token (a SMART client app's) may do outside the FHIR door, whose routes check
# the scope of each resource type themselves: read the images of the studies it may read
# (their DICOMweb Endpoint) and the signed reports it may read.
_SCOPED_OPERATIONS = {
    "search": ("ImagingStudy", "s"),
    "retrieve": ("ImagingStudy", "r"),
    "report-read": ("DiagnosticReport", "r"),
}


def _check_scopes(request: Request, principal: Principal, operation: str) -> None:
    """Refuse (403) a scoped token anything its SMART scopes do not name."""
    if operation in ("self", "public"):
        return
    needed = _SCOPED_OPERATIONS.get(operation)
    if needed is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"this token's scopes allow reading only, not {operation}"
        )
    if request.url.path.startswith("/fhir/"):
        return  # the FHIR routes check the scope of their resource type
    if not allows(principal.scopes, *needed):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"this token's scopes do not allow reading {needed[0]}"
        )


def authorize(operation: str) -> Callable[[Request], Principal]:
    """A dependency that lets the request through only if the policy permits ``operation``."""
    if operation not in POLICY:
        raise ValueError(f"operation {operation!r} is not in the policy table")

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if principal.scopes is not None:
            _check_scopes(request, principal, operation)
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
