"""Single sign-on against a live OpenID Connect provider: roles mapped, forgeries refused."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.http.app import create_app
from pacs.archive import Archive
from tests.security.oidc_provider import Provider, running_provider


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def web(sqlite_archive: Archive, provider: Provider) -> TestClient:
    settings = sqlite_archive.settings
    settings.oidc_issuer = provider.issuer
    settings.oidc_client_id = provider.client_id
    settings.oidc_client_secret = SecretStr(provider.client_secret)
    settings.oidc_role_map = {"pacs-doctor": "radiologist", "pacs-admin": "admin"}
    return TestClient(create_app(sqlite_archive))


def _sign_on(web: TestClient) -> httpx.Response:
    """Browser steps: our redirect, the IdP's redirect back, our callback."""
    to_idp = web.get("/login/oidc", follow_redirects=False)
    assert to_idp.status_code == 303
    back = httpx.get(to_idp.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    callback = urlparse(back.headers["location"])
    return web.get(f"{callback.path}?{callback.query}", follow_redirects=False)


def test_keycloak_style_roles_map_to_ours(
    web: TestClient, provider: Provider, sqlite_archive: Archive
) -> None:
    provider.user = {
        "sub": "u-1",
        "preferred_username": "bs.lan",
        "realm_access": {"roles": ["offline", "pacs-doctor"]},
    }
    done = _sign_on(web)
    assert done.status_code == 303 and done.headers["location"] == "/viewer/"
    who = web.get("/api/me").json()
    operations = who.pop("operations")
    assert "search" in operations and "admin" not in operations  # what the app's links follow
    assert who == {
        "name": "sso:bs.lan",
        "kind": "user",
        "role": "radiologist",
        "study_uid": None,
    }
    assert sqlite_archive.audit.events()[-1].detail == "sso"


def test_user_without_a_mapped_role_is_refused(web: TestClient, provider: Provider) -> None:
    provider.user = {
        "sub": "u-2",
        "preferred_username": "visitor",
        "realm_access": {"roles": ["offline"]},
    }
    assert _sign_on(web).status_code == 403
    assert web.get("/api/me").status_code == 401


def test_forged_state_is_refused(web: TestClient, provider: Provider) -> None:
    provider.user = {
        "sub": "u-3",
        "preferred_username": "x",
        "realm_access": {"roles": ["pacs-admin"]},
    }
    to_idp = web.get("/login/oidc", follow_redirects=False)
    back = urlparse(
        httpx.get(to_idp.headers["location"], follow_redirects=False).headers["location"]
    )
    forged = back.query.replace("state=", "state=x")
    assert web.get(f"{back.path}?{forged}").status_code == 400
    assert web.get("/api/me").status_code == 401


def test_token_signed_with_an_unpublished_key_is_refused(
    web: TestClient, provider: Provider
) -> None:
    provider.user = {
        "sub": "u-4",
        "preferred_username": "y",
        "realm_access": {"roles": ["pacs-admin"]},
    }
    provider.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = _sign_on(web)
    assert response.status_code == 401 and "ID token rejected" in response.json()["detail"]
    assert web.get("/api/me").status_code == 401


def test_sso_not_configured_is_404(sqlite_archive: Archive) -> None:
    with TestClient(create_app(sqlite_archive)) as web:
        assert web.get("/login/oidc", follow_redirects=False).status_code == 404
