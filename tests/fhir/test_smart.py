"""SMART on FHIR for a client app, over real HTTP: the configuration document, tokens by
the client credentials grant, and scopes that decide which resource types a token reads
(a 403 OperationOutcome for the others, on the FHIR door and outside it). Every answer is
validated by fhir.resources' R4B models."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.query_dimse.archive_factory import STUDIES, populate

SECRET = "emr-app-secret-2026!"


@pytest.fixture
def server(archive: Archive, admin_auth: tuple[str, str], live_http: str) -> Iterator[str]:
    populate(archive)
    create_account(archive.sessions, "emr-app", SECRET, Role.INTEGRATION)
    create_account(archive.sessions, "bs.lan", SECRET, Role.RADIOLOGIST)
    yield live_http


def _token(base: str, scope: str, auth: tuple[str, str] = ("emr-app", SECRET)) -> httpx.Response:
    return httpx.post(
        f"{base}/fhir/auth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=auth,
        timeout=30,
    )


def _refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 403, response.text
    problem = OperationOutcome.model_validate_json(response.content)
    assert problem.issue[0].code == "forbidden" and words in problem.issue[0].diagnostics


def test_configuration_and_capability_name_the_token_endpoint(server: str) -> None:
    anonymous = httpx.Client(base_url=server, timeout=10)
    with anonymous:
        smart = anonymous.get("/fhir/.well-known/smart-configuration")
        assert smart.status_code == 200
        document = smart.json()
        assert document["token_endpoint"] == f"{server}/fhir/auth/token"
        assert document["grant_types_supported"] == ["client_credentials"]
        assert "client-confidential-symmetric" in document["capabilities"]
        assert "system/ImagingStudy.rs" in document["scopes_supported"]
        statement = CapabilityStatement.model_validate_json(anonymous.get("/fhir/metadata").content)
    security = statement.rest[0].security
    assert security.service[0].coding[0].code == "SMART-on-FHIR"
    [uris] = security.extension
    assert uris.extension[0].valueUri == f"{server}/fhir/auth/token"


def test_scoped_token_reads_only_what_its_scopes_name(archive: Archive, server: str) -> None:
    issued = _token(server, "system/ImagingStudy.read user/Patient.rs launch openid")
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    answer = issued.json()
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 3600
    assert answer["scope"] == "system/ImagingStudy.rs user/Patient.rs"

    app = httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {answer['access_token']}"}, timeout=30
    )
    with app:
        found = app.get("/fhir/ImagingStudy", params={"_count": "50"})
        assert found.status_code == 200, found.text
        matches = Bundle.model_validate_json(found.content).entry or []
        assert len([e for e in matches if e.search.mode == "match"]) == len(STUDIES)
        assert app.get("/fhir/Patient", params={"name": "nguyen"}).status_code == 200
        _refused(app.get("/fhir/DiagnosticReport"), "search DiagnosticReport")
        _refused(app.get("/fhir/Endpoint"), "search Endpoint")
        _refused(app.get("/fhir/Endpoint/dicomweb"), "read Endpoint")
        # The images behind the studies it may read: DICOMweb with the same token.
        assert app.get("/dicom-web/studies").status_code == 200
        # Nothing but reading: no storing, no administration, no reports.
        assert app.get("/api/users").status_code == 403
        assert app.post("/dicom-web/studies", content=b"").status_code == 403

    patients_only = _token(server, "user/Patient.rs").json()["access_token"]
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {patients_only}"}, timeout=30
    ) as app:
        _refused(app.get("/fhir/ImagingStudy"), "search ImagingStudy")
        assert app.get("/dicom-web/studies").status_code == 403
        assert app.get("/fhir/Patient").status_code == 200

    issues = [e for e in archive.audit.events() if e.action == "token-issue"]
    assert [e.actor for e in issues] == ["emr-app", "emr-app"]
    assert "system/ImagingStudy.rs" in issues[0].detail


def test_token_endpoint_refusals(
    archive: Archive, server: str, admin_auth: tuple[str, str]
) -> None:
    def error(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"] == code

    error(_token(server, "system/ImagingStudy.rs", ("emr-app", "wrong")), 401, "invalid_client")
    error(_token(server, "system/ImagingStudy.rs", ("bs.lan", SECRET)), 401, "invalid_client")
    error(_token(server, "patient/ImagingStudy.read"), 400, "invalid_scope")
    error(_token(server, "system/Observation.read"), 400, "invalid_scope")
    error(_token(server, "system/ImagingStudy.cud"), 400, "invalid_scope")
    error(_token(server, ""), 400, "invalid_scope")
    other = httpx.post(
        f"{server}/fhir/auth/token",
        data={"grant_type": "password", "username": "emr-app", "password": SECRET},
        timeout=30,
    )
    error(other, 400, "unsupported_grant_type")
    for body, kind in (
        (b"grant_type=client_credentials&" * 20, "application/x-www-form-urlencoded"),
        (b"x" * 5000, "application/x-www-form-urlencoded"),
        (b'{"grant_type": "client_credentials"}', "application/json"),
    ):
        odd = httpx.post(
            f"{server}/fhir/auth/token", content=body, headers={"Content-Type": kind}, timeout=30
        )
        error(odd, 400, "invalid_request")
    posted = httpx.post(  # client_secret_post works too
        f"{server}/fhir/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_id": "emr-app",
            "client_secret": SECRET,
        },
        timeout=30,
    )
    assert posted.status_code == 200 and posted.json()["scope"] == "system/*.rs"
    failures = [e for e in archive.audit.events() if e.action == "token-issue"]
    assert sum(1 for e in failures if e.outcome.startswith("failure")) == 6

    # An administrator gives a script a scoped token; a scope this server cannot grant is a 400.
    admin = httpx.Client(base_url=server, auth=admin_auth, timeout=30)
    with admin:
        made = admin.post("/api/users/emr-app/tokens", json={"scopes": "user/DiagnosticReport.rs"})
        assert made.status_code == 201, made.text
        assert made.json()["scopes"] == "user/DiagnosticReport.rs"
        bad = admin.post("/api/users/emr-app/tokens", json={"scopes": "patient/*.read"})
        assert bad.status_code == 400 and "launch context" in bad.json()["detail"]
    reader = httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {made.json()['token']}"}, timeout=30
    )
    with reader:
        assert reader.get("/fhir/DiagnosticReport").status_code == 200
        _refused(reader.get("/fhir/Patient"), "search Patient")
