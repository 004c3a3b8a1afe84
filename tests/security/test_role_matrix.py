"""The route x role matrix: every guarded route, every role, plus anonymous, expired and revoked.

Derived from the routes actually registered and the policy table, so a new
route is covered the day it is added. A permitted role must never get 401 or
403; a refused one must get exactly that.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.policy import POLICY, PUBLIC_ROUTES
from pacs.auth.principal import Role
from tests.security.routes import api_routes, sample_path
from tests.security.test_route_policy import _operations

HUMAN = [Role.ADMIN, Role.RADIOLOGIST, Role.CLINICIAN, Role.INTEGRATION, Role.AUDITOR]


def _guarded(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path with dummy parameters, operation) for every guarded route."""
    found = []
    for path, route in api_routes(app):
        operations = _operations(route.dependant)
        if path in PUBLIC_ROUTES or not operations:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, sample_path(path), next(iter(operations))))
    return found


@pytest.fixture
def tokens(sqlite_archive: Archive) -> dict[str, str]:
    sessions = sqlite_archive.sessions
    result = {}
    for role in HUMAN:
        accounts.create_account(sessions, f"u-{role}", "long-password", role)
        result[str(role)] = accounts.create_token(sessions, f"u-{role}")
    result["expired"] = accounts.create_token(sessions, "u-admin", expires_in=timedelta(seconds=-1))
    revoked = accounts.create_token(sessions, "u-admin")
    accounts.revoke_token(sessions, revoked.removeprefix("pacs_").partition("_")[0])
    result["revoked"] = revoked
    return result


def test_route_role_matrix(sqlite_archive: Archive, tokens: dict[str, str]) -> None:
    # Hundreds of expired/revoked tokens from one address: the failure limiter (tested in
    # test_credentials.py) would answer 429; this test is about the policy table.
    sqlite_archive.settings.login_attempts_per_minute = 100_000
    app = create_app(sqlite_archive)
    routes = _guarded(app)
    assert len(routes) >= 15, "the DICOMweb and admin routes should all be here"
    failures = []
    with TestClient(app) as http:
        for method, path, operation in routes:
            allowed = POLICY[operation]
            cases: list[tuple[str, dict[str, str], set[int] | None]] = [
                ("anonymous", {}, {401}),
                ("expired", {"Authorization": f"Bearer {tokens['expired']}"}, {401}),
                ("revoked", {"Authorization": f"Bearer {tokens['revoked']}"}, {401}),
            ]
            for role in HUMAN:
                headers = {"Authorization": f"Bearer {tokens[str(role)]}"}
                cases.append((str(role), headers, None if role in allowed else {403}))
            for who, headers, expected in cases:
                status = http.request(method, path, headers=headers).status_code
                if expected is None and status in (401, 403):
                    failures.append(f"{who} {method} {path}: {status}, policy allows {operation}")
                elif expected is not None and status not in expected:
                    failures.append(f"{who} {method} {path}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)
