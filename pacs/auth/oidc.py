"""Single sign-on through OpenID Connect (authorization code flow with PKCE), e.g. Keycloak.

The IdP proves who the user is; its role claim (Keycloak: ``realm_access.roles``)
is mapped to ours by ``oidc_role_map``. A user with no mapped role is refused.
The signed ID token is verified against the IdP's published keys (issuer,
audience, expiry, nonce) before anything is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt

from pacs.auth.principal import Role
from pacs.settings import Settings

ROLE_PRIORITY = [Role.ADMIN, Role.RADIOLOGIST, Role.CLINICIAN, Role.INTEGRATION, Role.AUDITOR]


class OidcError(Exception):
    """Sign-on failed (IdP unreachable, bad token, no role): the reason is shown to the user."""


@dataclass(frozen=True)
class LoginStart:
    url: str
    state: str
    nonce: str
    verifier: str


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _http_json(
    url: str, data: dict[str, str] | None = None, auth: tuple[str, str] | None = None
) -> Any:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)
    if auth is not None:
        token = base64.b64encode(
            f"{urllib.parse.quote(auth[0])}:{urllib.parse.quote(auth[1])}".encode()
        )
        request.add_header("Authorization", f"Basic {token.decode()}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except (OSError, ValueError) as exc:
        raise OidcError(f"identity provider unreachable or invalid answer: {exc}") from exc


class OidcClient:
    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise OidcError("single sign-on is not configured")
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")

    @cached_property
    def discovery(self) -> dict[str, Any]:
        document = _http_json(f"{self.issuer}/.well-known/openid-configuration")
        if document.get("issuer", "").rstrip("/") != self.issuer:
            raise OidcError("the identity provider's discovery document names another issuer")
        return dict(document)

    @cached_property
    def _keys(self) -> jwt.PyJWKClient:
        return jwt.PyJWKClient(self.discovery["jwks_uri"], cache_keys=True)

    def start(self, redirect_uri: str) -> LoginStart:
        state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.oidc_client_id,
                "redirect_uri": redirect_uri,
                "scope": self.settings.oidc_scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": _pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return LoginStart(
            f"{self.discovery['authorization_endpoint']}?{query}", state, nonce, verifier
        )

    def finish(self, code: str, redirect_uri: str, verifier: str, nonce: str) -> dict[str, Any]:
        """Exchange the code and return the verified ID token claims."""
        secret = self.settings.oidc_client_secret
        tokens = _http_json(
            self.discovery["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(self.settings.oidc_client_id, secret.get_secret_value() if secret else ""),
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the identity provider returned no ID token")
        try:
            key = self._keys.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=["RS256", "ES256", "PS256"],
                audience=self.settings.oidc_client_id,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"ID token rejected: {exc}") from exc
        if claims.get("nonce") != nonce:
            raise OidcError("ID token rejected: nonce mismatch")
        return claims

    def username(self, claims: dict[str, Any]) -> str:
        name = claims.get(self.settings.oidc_username_claim) or claims["sub"]
        return f"sso:{str(name)[:60]}"

    def role(self, claims: dict[str, Any]) -> Role | None:
        """Our role for the IdP's roles: the most privileged one the mapping yields."""
        value: Any = claims
        for part in self.settings.oidc_role_claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        idp_roles = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        mapped = {self.settings.oidc_role_map.get(str(r)) for r in idp_roles}
        for role in ROLE_PRIORITY:
            if str(role) in mapped:
                return role
        return None
