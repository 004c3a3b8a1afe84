"""Every administration route is declared in the policy table, refused to a clinician (403)
and an auditor (audit routes excepted), usable by a script with an admin's API token, and
described in the OpenAPI document with a response model (issue 18 items 1 and 9)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.principal import Role
from tests.security.routes import api_routes, sample_path
from tests.security.test_route_policy import _operations

# The administration API behind the pages: the routes whose paths start with these.
ADMIN_API = ("/api/users", "/api/tokens", "/api/storage", "/api/settings", "/api/aes")
ADMIN_API += ("/api/calling-aes", "/api/jobs", "/api/audit")
# Answers with a documented model (not a bare object): the routes this issue added or named.
MODELLED = ("/api/users", "/api/tokens", "/api/storage", "/api/settings", "/api/shares")
MODELLED += ("/api/audit/verify", "/api/aes", "/api/jobs")


def _admin_routes(archive: Archive) -> list[tuple[str, str, str]]:
    found = []
    for path, route in api_routes(create_app(archive)):
        if not path.startswith(ADMIN_API):
            continue
        (operation,) = _operations(route.dependant)  # exactly one declared operation
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, path, operation))
    return found


@pytest.fixture
def tokens(sqlite_archive: Archive) -> dict[Role, str]:
    found = {}
    for role in (Role.ADMIN, Role.CLINICIAN, Role.AUDITOR):
        accounts.create_account(sqlite_archive.sessions, f"u-{role}", "mat-khau-dai-1", role)
        found[role] = accounts.create_token(sqlite_archive.sessions, f"u-{role}")
    return found


def test_a_clinician_gets_403_on_every_admin_route(
    sqlite_archive: Archive, tokens: dict[Role, str]
) -> None:
    routes = _admin_routes(sqlite_archive)
    assert len(routes) >= 25, routes  # users, tokens, storage, settings, aes, jobs, audit
    assert {operation for _, _, operation in routes} == {"admin", "audit"}
    refused = []
    with TestClient(create_app(sqlite_archive)) as http:
        for method, path, operation in routes:
            for role in (Role.CLINICIAN, Role.AUDITOR):
                if role is Role.AUDITOR and operation == "audit":
                    continue
                headers = {"Authorization": f"Bearer {tokens[role]}"}
                status = http.request(method, sample_path(path), headers=headers).status_code
                if status != 403:
                    refused.append(f"{role} {method} {path}: {status}")
    assert not refused, "\n".join(refused)


def test_an_admin_token_reaches_every_read_route(
    sqlite_archive: Archive, tokens: dict[Role, str]
) -> None:
    headers = {"Authorization": f"Bearer {tokens[Role.ADMIN]}"}
    with TestClient(create_app(sqlite_archive)) as script:
        for path in (
            "/api/users",
            "/api/tokens",
            "/api/storage",
            "/api/settings",
            "/api/shares",
            "/api/audit",
            "/api/audit/verify",
            "/api/aes",
            "/api/jobs",
            f"/api/users/u-{Role.CLINICIAN}/tokens",
        ):
            response = script.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
    actors = {event.actor_kind for event in sqlite_archive.audit.events()}
    assert "token" in actors  # the reads that are audited name the token's owner


def test_the_admin_api_is_described_with_response_models(sqlite_archive: Archive) -> None:
    spec = create_app(sqlite_archive).openapi()
    undocumented = []
    for path, route in api_routes(create_app(sqlite_archive)):
        if not path.startswith(MODELLED):
            continue
        for method in route.methods - {"HEAD"}:
            operation = spec["paths"].get(path, {}).get(method.lower())
            if operation is None:
                undocumented.append(f"{method} {path}: not in the OpenAPI description")
                continue
            if not operation.get("description") and not operation.get("summary"):
                undocumented.append(f"{method} {path}: no description")
            code, answer = next(iter(operation["responses"].items()))
            if code == "204":
                continue
            content = answer.get("content", {})
            if content and "application/json" not in content:
                continue  # an image or a file, described by its media types
            schema = content.get("application/json", {}).get("schema", {})
            if "$ref" not in str(schema):
                undocumented.append(f"{method} {path}: {code} without a response model")
    assert not undocumented, "\n".join(undocumented)
