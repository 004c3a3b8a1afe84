"""Image display launch from the EMR over real HTTP: IHE IID (STUDY and PATIENT) and the HIS's
per-study links (share grants: signed, expiring, bound to one study, audited per opening)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.query_dimse.archive_factory import PATIENTS, STUDIES, populate, study_uid

HIS_PASSWORD = "his-integration-password"
# The matching behind these routes is the FHIR tests' engine, run there on both databases;
# the launch itself (redirects, grants, cookies) does not depend on the database.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(archive: Archive, admin_auth: tuple[str, str], live_http: str) -> Iterator[str]:
    populate(archive)
    create_account(archive.sessions, "his", HIS_PASSWORD, Role.INTEGRATION)
    yield live_http


def test_invoke_image_display(server: str, admin_auth: tuple[str, str], archive: Archive) -> None:
    with httpx.Client(base_url=server, auth=admin_auth, timeout=30) as http:
        opened = http.get(
            "/IHEInvokeImageDisplay", params={"requestType": "STUDY", "studyUID": study_uid(2)}
        )
        assert opened.status_code == 303
        assert opened.headers["location"] == f"/viewer/?StudyInstanceUIDs={study_uid(2)}"
        by_accession = http.get(
            "/IHEInvokeImageDisplay",
            params={"requestType": "STUDY", "accessionNumber": STUDIES[3].accession},
        )
        assert by_accession.headers["location"].endswith(study_uid(3))

        # A patient (HL7 CX with its issuer): a page listing that patient's studies.
        listing = http.get(
            "/IHEInvokeImageDisplay",
            params={"requestType": "PATIENT", "patientID": "BN001^^^BV-HUE"},
            headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"},
        )
        assert listing.status_code == 200, listing.text
        assert "Các ca chụp của bệnh nhân Nguyễn Văn An" in listing.text
        ours = [s for s, spec in enumerate(STUDIES) if spec.patient == 0]
        for s in ours:
            assert f"/viewer/?StudyInstanceUIDs={study_uid(s)}" in listing.text
        assert listing.text.count("StudyInstanceUIDs=") == len(ours)
        # The citizen ID finds the same patient; English on request.
        english = http.get(
            "/IHEInvokeImageDisplay",
            params={"requestType": "PATIENT", "patientID": PATIENTS[0].citizen_id},
            headers={"Accept-Language": "en"},
        )
        assert "Imaging studies of Nguyễn Văn An" in english.text
        assert english.text.count("StudyInstanceUIDs=") == len(ours)

        for params in (
            {"requestType": "SERIES"},
            {"requestType": "STUDY"},
            {"requestType": "STUDY", "studyUID": "1.2.abc"},
            {"requestType": "PATIENT", "patientID": "BN*"},
        ):
            assert http.get("/IHEInvokeImageDisplay", params=params).status_code == 400, params
        unknown = {"requestType": "STUDY", "studyUID": "1.2.3.4.5"}
        assert http.get("/IHEInvokeImageDisplay", params=unknown).status_code == 404
    events = [e for e in archive.audit.events(patient_id="BN001") if e.action == "iid"]
    assert events and all(e.actor == "admin" for e in events)

    anonymous = httpx.get(
        f"{server}/IHEInvokeImageDisplay",
        params={"requestType": "STUDY", "studyUID": study_uid(2)},
    )
    assert anonymous.status_code == 401


def test_his_mints_a_link_bound_to_one_study(server: str, archive: Archive) -> None:
    his = ("his", HIS_PASSWORD)
    minted = httpx.post(
        f"{server}/api/ehr/links",
        json={"study_uid": study_uid(0), "user": "bs.lan", "minutes": 30},
        auth=his,
    )
    assert minted.status_code == 201, minted.text
    link = minted.json()
    assert link["url"].startswith(f"{server}/s/")

    # Whoever holds the link opens this study in the viewer, and only this study.
    with httpx.Client(timeout=30) as browser:
        landing = browser.get(link["url"])
        assert landing.status_code == 303
        assert landing.headers["location"] == f"/viewer/?StudyInstanceUIDs={study_uid(0)}"
        own = browser.get(f"{server}/dicom-web/studies", params={"StudyInstanceUID": study_uid(0)})
        assert own.status_code == 200 and len(own.json()) == 1
        other = browser.get(f"{server}/dicom-web/studies/{study_uid(1)}/metadata")
        assert other.status_code == 403
        assert browser.get(link["url"]).status_code == 303  # each opening audited
    openings = [e for e in archive.audit.events(study_uid=study_uid(0)) if e.action == "share-open"]
    assert len(openings) == 2
    created = [e for e in archive.audit.events(study_uid=study_uid(0)) if e.action == "link-create"]
    assert created and created[0].actor == "his" and "bs.lan" in created[0].detail

    # A forged token, an unknown study, a life out of bounds, a role without the right.
    assert httpx.get(link["url"][:-2] + "xx").status_code == 410
    bad = [{"study_uid": "1.2.3.4.5"}, {"study_uid": study_uid(0), "minutes": 0}]
    codes = [httpx.post(f"{server}/api/ehr/links", json=b, auth=his).status_code for b in bad]
    assert codes == [404, 422]
    create_account(archive.sessions, "doctor", "doctor-password-long", Role.CLINICIAN)
    refused = httpx.post(
        f"{server}/api/ehr/links",
        json={"study_uid": study_uid(0)},
        auth=("doctor", "doctor-password-long"),
    )
    assert refused.status_code == 403
