"""A share-link holder retrieves its one study through WADO-RS and nothing else."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.principal import Role
from tests.dicom_factory import ct_slice, to_bytes
from tests.wado.helpers import ingest_ds


def test_share_grant_is_scoped_to_its_study(archive: Archive) -> None:
    archive.settings.public_base_url = "http://testserver"
    shared, other = ct_slice(), ct_slice()
    ingest_ds(archive, shared)
    ingest_ds(archive, other)
    accounts.create_account(archive.sessions, "bs.lan", "mat-khau-dai", Role.RADIOLOGIST)
    with TestClient(create_app(archive)) as doctor:
        doctor.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
        share = doctor.post(f"/api/studies/{shared.StudyInstanceUID}/shares", json={}).json()
    path = share["url"].split("testserver", 1)[1]
    with TestClient(create_app(archive)) as patient:
        patient.get(path, follow_redirects=False)
        mine = patient.get(f"/dicom-web/studies/{shared.StudyInstanceUID}/metadata")
        assert mine.status_code == 200
        assert patient.get(f"/dicom-web/studies/{shared.StudyInstanceUID}").status_code == 200
        theirs = patient.get(f"/dicom-web/studies/{other.StudyInstanceUID}/metadata")
        assert theirs.status_code == 403
        assert patient.get(f"/dicom-web/studies/{other.StudyInstanceUID}").status_code == 403
        params = {
            "requestType": "WADO",
            "studyUID": other.StudyInstanceUID,
            "seriesUID": other.SeriesInstanceUID,
            "objectUID": other.SOPInstanceUID,
            "contentType": "application/dicom",
        }
        assert patient.get("/wado", params=params).status_code == 403
        body = (
            b"--b\r\nContent-Type: application/dicom\r\n\r\n" + to_bytes(ct_slice()) + b"\r\n--b--"
        )
        header = 'multipart/related; type="application/dicom"; boundary=b'
        stow = patient.post("/dicom-web/studies", content=body, headers={"Content-Type": header})
        assert stow.status_code == 403  # share links are read-only
