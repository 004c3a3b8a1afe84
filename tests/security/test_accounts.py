"""Accounts, passwords, tokens and the HTTP dependency that checks them (both index databases)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.accounts import AccountError
from pacs.auth.http import authorize
from pacs.auth.principal import Kind, Principal, Role


def _app(archive: Archive) -> FastAPI:
    app = FastAPI()
    app.state.archive = archive

    @app.get("/search")
    def search(principal: Annotated[Principal, Depends(authorize("search"))]) -> dict[str, str]:
        return {"name": principal.name, "role": str(principal.role), "kind": str(principal.kind)}

    @app.get("/admin")
    def admin(principal: Annotated[Principal, Depends(authorize("admin"))]) -> dict[str, str]:
        return {"name": principal.name}

    return app


def test_password_is_stored_as_argon2_and_checked(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "bs.lan", "dung-mat-khau", Role.RADIOLOGIST)
    principal = accounts.check_password(archive.sessions, "bs.lan", "dung-mat-khau")
    assert principal == Principal(Kind.USER, "bs.lan", Role.RADIOLOGIST)
    assert accounts.check_password(archive.sessions, "bs.lan", "sai-mat-khau") is None
    assert accounts.check_password(archive.sessions, "nobody", "dung-mat-khau") is None
    from sqlalchemy import select

    from pacs.auth.models import Account

    with archive.sessions() as session:
        stored = session.scalar(select(Account.password_hash))
    assert stored is not None and stored.startswith("$argon2id$")
    assert "dung-mat-khau" not in stored


def test_duplicate_and_weak_accounts_refused(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "a", "long-enough", Role.CLINICIAN)
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_account(archive.sessions, "a", "long-enough", Role.CLINICIAN)
    with pytest.raises(AccountError, match="at least 8"):
        accounts.create_account(archive.sessions, "b", "short", Role.CLINICIAN)
    with pytest.raises(AccountError, match="cannot be given"):
        accounts.create_account(archive.sessions, "c", "long-enough", Role.SHARE)


def test_lockout_after_repeated_failures(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "u", "right-password", Role.CLINICIAN)
    for _ in range(accounts.MAX_FAILED_LOGINS):
        assert accounts.check_password(archive.sessions, "u", "wrong-password") is None
    # Locked: even the right password is refused until the lockout ends or an admin resets it.
    assert accounts.check_password(archive.sessions, "u", "right-password") is None
    accounts.set_password(archive.sessions, "u", "new-password")
    assert accounts.check_password(archive.sessions, "u", "new-password") is not None


def test_disabled_account_cannot_log_in(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "u", "right-password", Role.CLINICIAN)
    accounts.set_disabled(archive.sessions, "u")
    assert accounts.check_password(archive.sessions, "u", "right-password") is None


def test_first_admin_created_once(archive: Archive) -> None:
    password = accounts.ensure_admin(archive.sessions)
    assert password and len(password) >= 16
    assert accounts.check_password(archive.sessions, "admin", password) is not None
    assert accounts.ensure_admin(archive.sessions) is None


def test_tokens_expire_and_revoke(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "his", "machine-password", Role.INTEGRATION)
    token = accounts.create_token(archive.sessions, "his", "EHR link")
    principal = accounts.check_token(archive.sessions, token)
    assert principal is not None and principal.kind is Kind.TOKEN and principal.name == "his"
    assert accounts.check_token(archive.sessions, token + "x") is None
    expired = accounts.create_token(archive.sessions, "his", expires_in=timedelta(seconds=-1))
    assert accounts.check_token(archive.sessions, expired) is None
    token_id = token.removeprefix("pacs_").partition("_")[0]
    assert accounts.revoke_token(archive.sessions, token_id)
    assert accounts.check_token(archive.sessions, token) is None


def test_http_dependency(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "bs", "right-password", Role.CLINICIAN)
    token = accounts.create_token(archive.sessions, "bs")
    with TestClient(_app(archive)) as http:
        anonymous = http.get("/search")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        assert http.get("/search", auth=("bs", "right-password")).json()["role"] == "clinician"
        assert http.get("/search", auth=("bs", "wrong-password")).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert http.get("/search", headers=bearer).json()["kind"] == "token"
        assert http.get("/admin", headers=bearer).status_code == 403
        bad = {"Authorization": "Bearer pacs_0000_nothing"}
        assert http.get("/search", headers=bad).status_code == 401
        garbage = {"Authorization": "Basic %%%"}
        assert http.get("/search", headers=garbage).status_code == 401


def test_basic_refused_over_plain_http_from_the_network(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "bs", "right-password", Role.CLINICIAN)
    basic = base64.b64encode(b"bs:right-password").decode()
    with TestClient(_app(archive), client=("10.0.0.7", 40000)) as http:
        response = http.get("/search", headers={"Authorization": f"Basic {basic}"})
        assert response.status_code == 403
        assert "HTTPS" in response.json()["detail"]
    with TestClient(_app(archive), base_url="https://pacs.example", client=("10.0.0.7", 1)) as http:
        response = http.get("/search", headers={"Authorization": f"Basic {basic}"})
        assert response.status_code == 200


def test_client_fixture_is_logged_in_as_admin(client: TestClient) -> None:
    assert client.get("/api/me").json()["role"] == "admin"


def test_basic_credentials_cached_briefly_not_forever(archive: Archive) -> None:
    import time

    from pacs.auth.basic_cache import BasicCache

    accounts.create_account(archive.sessions, "bs", "right-password", Role.CLINICIAN)
    with TestClient(_app(archive)) as http:
        assert http.get("/search", auth=("bs", "right-password")).status_code == 200
        # Verified once, then served from the cache (no Argon2 per request) until the TTL:
        # the changed password is not looked at for the cached pair.
        accounts.set_password(archive.sessions, "bs", "changed-password")
        assert http.get("/search", auth=("bs", "right-password")).status_code == 200
        assert http.get("/search", auth=("bs", "wrong-password")).status_code == 401
        assert http.get("/search", auth=("bs", "changed-password")).status_code == 200
    cache = BasicCache("key", ttl=0.05)
    principal = accounts.check_password(archive.sessions, "bs", "changed-password")
    assert principal is not None
    cache.put("bs", "right-password", principal)
    assert cache.get("bs", "right-password") == principal
    assert cache.get("bs", "other") is None
    time.sleep(0.06)
    assert cache.get("bs", "right-password") is None
