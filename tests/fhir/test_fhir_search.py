"""The FHIR door over real HTTP (uvicorn), on SQLite and PostgreSQL: every response parsed and
validated by fhir.resources' R4B models, one search through ``fhirclient`` (its R4 models).

The archive is the generated one of the query tests (Vietnamese names, citizen IDs under
issuer CCCD, several dates and modalities), so expectations are derived from its specs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.query_dimse.archive_factory import PATIENTS, STUDIES, populate, study_uid

CCCD = "http://fhir.hl7.org.vn/core/sid/cccd"
VN_CORE = "http://fhir.hl7.org.vn/core"


@pytest.fixture
def fhir(archive: Archive, admin_auth: tuple[str, str], live_http: str) -> Iterator[httpx.Client]:
    populate(archive)
    with httpx.Client(base_url=f"{live_http}/fhir", auth=admin_auth, timeout=30) as http:
        yield http


def bundle(response: httpx.Response) -> Bundle:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    return Bundle.model_validate_json(response.content)


def studies(found: Bundle) -> list[ImagingStudy]:
    return [
        ImagingStudy.model_validate(e.resource.model_dump())
        for e in found.entry or []
        if e.resource.get_resource_type() == "ImagingStudy"
    ]


def accessions(found: Bundle) -> set[str]:
    return {i.value for s in studies(found) for i in s.identifier or [] if i.type and i.type.coding}


def expected(predicate: Any) -> set[str]:
    return {spec.accession for spec in STUDIES if predicate(spec)}


def test_imaging_study_searches(fhir: httpx.Client) -> None:
    """By citizen ID (with series, instances, endpoint), patient, identifier, started, modality."""
    citizen = PATIENTS[0].citizen_id
    found = bundle(fhir.get("/ImagingStudy", params={"patient.identifier": f"{CCCD}|{citizen}"}))
    assert accessions(found) == expected(lambda s: s.patient == 0)
    first = next(s for s in studies(found) if s.id == study_uid(0))
    spec = STUDIES[0]
    assert first.numberOfSeries == len(spec.series)
    assert first.numberOfInstances == sum(n for _, n in spec.series)
    assert [len(series.instance or []) for series in first.series or []] == [
        n for _, n in spec.series
    ]
    assert {c.code for c in first.modality or []} == {"CT"}
    assert first.started.isoformat() == "2025-01-10T08:30:00+07:00"
    uid_ids = [i.value for i in first.identifier or [] if i.system == "urn:dicom:uid"]
    assert uid_ids == [f"urn:oid:{study_uid(0)}"]
    assert first.subject.display == "Nguyễn Văn An"

    # The endpoint named by the study is the DICOMweb root, and the subject reads back.
    assert first.endpoint and first.endpoint[0].reference == "Endpoint/dicomweb"
    endpoint = Endpoint.model_validate_json(fhir.get("/Endpoint/dicomweb").content)
    assert endpoint.connectionType.code == "dicom-wado-rs"
    assert endpoint.address == f"{fhir.base_url.scheme}://{fhir.base_url.netloc.decode()}/dicom-web"
    patient = Patient.model_validate_json(fhir.get(f"/{first.subject.reference}").content)
    assert patient.name[0].family == "Nguyễn" and patient.name[0].given == ["Văn", "An"]
    assert patient.name[0].text == "Nguyễn Văn An"
    systems = {(i.system, i.value) for i in patient.identifier or []}
    assert (CCCD, citizen) in systems and ("urn:pacs:issuer:BV-HUE", "BN001") in systems
    [cccd] = [i for i in patient.identifier or [] if i.system == CCCD]
    assert {(c.system, c.code) for c in cccd.type.coding} == {
        ("http://terminology.hl7.org/CodeSystem/v2-0203", "NI"),
        (f"{VN_CORE}/CodeSystem/vn-identifier-type-cs", "CCCD"),
    }
    # HL7 Vietnam's VN Core profiles, declared by each resource and by the server.
    assert patient.meta.profile == [f"{VN_CORE}/StructureDefinition/vn-core-patient"]
    assert first.meta.profile == [f"{VN_CORE}/StructureDefinition/vn-core-imaging-study"]
    statement = CapabilityStatement.model_validate_json(fhir.get("/metadata").content)
    supported = {r.type: r.supportedProfile for r in statement.rest[0].resource}
    assert supported["Patient"] == [f"{VN_CORE}/StructureDefinition/vn-core-patient"]
    assert supported["DiagnosticReport"] == [
        f"{VN_CORE}/StructureDefinition/vn-core-diagnostic-report-imaging"
    ]
    # The same study by reference to the patient, and read by its id.
    by_reference = bundle(fhir.get("/ImagingStudy", params={"patient": first.subject.reference}))
    assert accessions(by_reference) == accessions(found)
    read = ImagingStudy.model_validate_json(fhir.get(f"/ImagingStudy/{study_uid(0)}").content)
    assert read.id == study_uid(0)

    # identifier (accession or study UID), started ranges, modality
    found = bundle(fhir.get("/ImagingStudy", params={"identifier": "ACC3001"}))
    assert accessions(found) == {"ACC3001"}
    by_uid = bundle(
        fhir.get("/ImagingStudy", params={"identifier": f"urn:dicom:uid|urn:oid:{study_uid(3)}"})
    )
    assert accessions(by_uid) == {STUDIES[3].accession}

    cases = [
        ([("started", "ge2025-06-01"), ("started", "lt2026-04")],
         lambda s: "20250601" <= s.date <= "20260331"),
        ([("started", "2025")], lambda s: s.date.startswith("2025")),
        ([("started", "gt2025-12-01")], lambda s: s.date > "20251201"),
        ([("started", "le2024-02-29")], lambda s: s.date <= "20240229"),
        ([("started", "eq2024-02-29")], lambda s: s.date == "20240229"),
        ([("started", "ge2026"), ("started", "lt2025")], lambda s: False),
    ]  # fmt: skip
    for params, predicate in cases:
        assert accessions(bundle(fhir.get("/ImagingStudy", params=params))) == expected(
            predicate
        ), params

    def has(spec: Any, codes: set[str]) -> bool:
        return any(m in codes for m, _ in spec.series)

    dcm = "http://dicom.nema.org/resources/ontology/DCM"
    mr = bundle(fhir.get("/ImagingStudy", params={"modality": f"{dcm}|MR"}))
    assert accessions(mr) == expected(lambda s: has(s, {"MR"}))
    either = bundle(fhir.get("/ImagingStudy", params={"modality": "CR,MR"}))
    assert accessions(either) == expected(lambda s: has(s, {"CR", "MR"}))
    other_system = bundle(fhir.get("/ImagingStudy", params={"modality": "http://x.org|MR"}))
    assert accessions(other_system) == set()


def test_paging_patients_and_fhirclient(fhir: httpx.Client, admin_auth: tuple[str, str]) -> None:
    """_count pages followed by their next links to the end, then Patient searches."""
    seen: list[str] = []
    url: str | None = "/ImagingStudy?_count=2"
    pages = 0
    previous_seen = False
    while url:
        page = bundle(fhir.get(url))
        pages += 1
        ids = [s.id for s in studies(page)]
        assert 0 < len(ids) <= 2
        seen.extend(str(i) for i in ids)
        links = {link.relation: link.url for link in page.link or []}
        previous_seen = previous_seen or "previous" in links
        url = links.get("next")
        assert pages <= len(STUDIES)
    assert pages == -(-len(STUDIES) // 2) and previous_seen
    assert sorted(seen) == sorted(study_uid(s) for s in range(len(STUDIES)))
    assert len(set(seen)) == len(seen)

    # Patient searches, and one through fhirclient (whose R4 models parse our answers).
    citizen = PATIENTS[1].citizen_id
    found = bundle(fhir.get("/Patient", params={"identifier": f"{CCCD}|{citizen}"}))
    patients = [Patient.model_validate(e.resource.model_dump()) for e in found.entry or []]
    assert [p.name[0].text for p in patients] == ["Trần Thị Bình"]
    assert patients[0].gender == "female" and str(patients[0].birthDate) == "1975-12-31"
    # Words in any order, without accents, find the name with its diacritics.
    by_name = bundle(fhir.get("/Patient", params={"name": "duc pham"}))
    assert [e.resource.name[0].text for e in by_name.entry or []] == ["Phạm Minh Đức"]

    from fhirclient.models.imagingstudy import ImagingStudy as ClientStudy
    from fhirclient.server import FHIRServer

    server = FHIRServer(None, base_uri=str(fhir.base_url) + "/")
    server.session.auth = admin_auth
    results = ClientStudy.where(
        struct={"patient.identifier": f"{CCCD}|{citizen}"}
    ).perform_resources_iter(server)
    assert {r.identifier[1].value for r in results} == expected(lambda s: s.patient == 1)
    assert all(r.series and r.series[0].instance for r in results)


# Refusals, warnings, audit and authentication do not depend on the database: SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_errors_warnings_audit_and_authentication(archive: Archive, fhir: httpx.Client) -> None:
    """Bad input is a 400 OperationOutcome; unknown parameters a warning; no credentials a 401."""
    for params in ({"started": "yesterday"}, {"_count": "many"}, {"identifier": "ACC*"}):
        response = fhir.get("/ImagingStudy", params=params)
        assert response.status_code == 400, params
        problem = OperationOutcome.model_validate_json(response.content)
        assert problem.issue[0].severity == "error"
    # Lenient by default: an unknown parameter is ignored, and said so in the Bundle.
    lenient = bundle(fhir.get("/ImagingStudy", params={"bodysite": "HEAD", "_count": "50"}))
    assert len(studies(lenient)) == len(STUDIES)
    outcomes = [e for e in lenient.entry or [] if e.search and e.search.mode == "outcome"]
    assert outcomes and "bodysite" in outcomes[0].resource.issue[0].diagnostics
    strict = fhir.get(
        "/ImagingStudy", params={"bodysite": "HEAD"}, headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400
    assert fhir.get("/ImagingStudy/1.2.3.999").status_code == 404
    assert fhir.get("/Patient/not-an-id").status_code == 404
    reports = bundle(fhir.get("/DiagnosticReport", params={"patient": "Patient/x"}))
    assert not [e for e in reports.entry or [] if e.search and e.search.mode == "match"]

    # Searches are audited with the patients they returned, like QIDO.
    events = archive.audit.events(patient_id="BN001")
    assert any(e.action == "fhir" and e.actor == "admin" for e in events)

    # The same authentication as DICOMweb: only the CapabilityStatement is public.
    anonymous = httpx.Client(base_url=str(fhir.base_url), timeout=10)
    with anonymous:
        capability = anonymous.get("/metadata")
        assert capability.status_code == 200
        statement = CapabilityStatement.model_validate_json(capability.content)
        assert statement.fhirVersion == "4.0.1"
        kinds = {r.type for r in statement.rest[0].resource}
        assert {"ImagingStudy", "Patient", "Endpoint", "DiagnosticReport"} <= kinds
        for path in ("/ImagingStudy", "/Patient", "/Endpoint", f"/ImagingStudy/{study_uid(0)}"):
            refused = anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic")
            assert OperationOutcome.model_validate_json(refused.content).issue[0].code == "login"
        assert anonymous.get("/Patient", auth=("admin", "wrong")).status_code == 401


def test_profiles_and_citizen_system_are_settings(archive: Archive, live_http: str) -> None:
    """Another IG (or none): the profile URLs and the citizen ID's system follow the settings."""
    populate(archive)
    ministry = "http://fhir.ehealth.gov.vn/core/sid/national_id"
    archive.settings.fhir_citizen_id_system = ministry
    archive.settings.fhir_profile_patient = ""
    archive.settings.fhir_profile_imaging_study = ""
    create_account(archive.sessions, "his", "his-password-2026", Role.INTEGRATION)
    with httpx.Client(
        base_url=f"{live_http}/fhir", auth=("his", "his-password-2026"), timeout=30
    ) as http:
        citizen = PATIENTS[0].citizen_id
        found = bundle(
            http.get("/ImagingStudy", params={"patient.identifier": f"{ministry}|{citizen}"})
        )
        [study, *_] = studies(found)
        assert study.meta is None or not study.meta.profile
        patient = Patient.model_validate_json(http.get(f"/{study.subject.reference}").content)
        assert (ministry, citizen) in {(i.system, i.value) for i in patient.identifier or []}
        assert patient.meta is None or not patient.meta.profile
        statement = CapabilityStatement.model_validate_json(http.get("/metadata").content)
        supported = {r.type: r.supportedProfile for r in statement.rest[0].resource}
        assert supported["ImagingStudy"] is None and supported["DiagnosticReport"]
