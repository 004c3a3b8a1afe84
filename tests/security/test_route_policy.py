"""Every HTTP route either declares an operation of the policy table or is listed as public.

This is the guard that keeps a new route from slipping out unauthenticated:
it walks the routes actually registered on the application.
"""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.testclient import TestClient

from app.http.app import create_app
from app.http.security import HEADERS
from pacs.archive import Archive
from pacs.auth.policy import POLICY, PUBLIC_ROUTES
from tests.security.routes import api_routes, sample_path


def _operations(dependant: Dependant) -> set[str]:
    found: set[str] = set()
    for sub in dependant.dependencies:
        operation = getattr(sub.call, "operation", None)
        if operation is not None:
            found.add(operation)
        found |= _operations(sub)
    return found


def test_every_route_is_in_the_policy_table(sqlite_archive: Archive) -> None:
    app = create_app(sqlite_archive)
    routes = api_routes(app)
    assert len(routes) >= 20, "route discovery broke: the DICOMweb routes are missing"
    unguarded = []
    for path, route in routes:
        operations = _operations(route.dependant)
        assert operations <= POLICY.keys(), path
        if not operations and path not in PUBLIC_ROUTES:
            unguarded.append(f"{sorted(route.methods)} {path}")
    assert not unguarded, f"routes without an authorize() operation: {unguarded}"


def test_anonymous_gets_401_on_every_guarded_route(sqlite_archive: Archive) -> None:
    app = create_app(sqlite_archive)
    with TestClient(app) as http:
        for path, route in api_routes(app):
            if path in PUBLIC_ROUTES:
                continue
            for method in sorted(route.methods - {"HEAD"}):
                response = http.request(method, sample_path(path))
                assert response.status_code == 401, (method, path, response.status_code)


def test_hardening_headers(sqlite_archive: Archive) -> None:
    with TestClient(create_app(sqlite_archive)) as http:
        for path in ("/health", "/", "/does-not-exist"):
            response = http.get(path)
            for name, value in HEADERS.items():
                assert response.headers[name] == value, (path, name)
    assert "frame-ancestors 'none'" in HEADERS["Content-Security-Policy"]


def test_policy_table_in_the_docs_matches_the_code() -> None:
    from pathlib import Path

    from pacs.auth.policy import render_policy_table

    docs = (Path(__file__).parents[2] / "docs" / "SECURITY.md").read_text()
    documented = docs.split("<!-- policy-table -->\n")[1].split("\n<!-- /policy-table -->")[0]
    assert documented == render_policy_table()
