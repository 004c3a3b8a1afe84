"""GET /api/studies: the web list's search, sorted and paged on the server with a total,
names matched word by word, every call audited with the patients returned (both databases)."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.dicom_factory import ct_slice, to_bytes
from tests.query_dimse.archive_factory import STUDIES, populate
from tests.query_dimse.archive_factory import study_uid as S


def _uids(body: dict[str, object]) -> list[str]:
    studies = body["studies"]
    assert isinstance(studies, list)
    return [item["0020000D"]["Value"][0] for item in studies]


def test_sorted_pages_total_and_words(client: TestClient, archive: Archive) -> None:
    populate(archive)
    pages = [
        client.get(
            "/api/studies", params={"sort": "PatientName,StudyDate", "limit": 3, "offset": o}
        )
        for o in (0, 3, 6)
    ]
    assert all(page.status_code == 200 for page in pages)
    assert {page.json()["total"] for page in pages} == {len(STUDIES)}
    flat = [uid for page in pages for uid in _uids(page.json())]
    assert flat == [S(4), S(0), S(1), S(6), S(5), S(7), S(2), S(3)]
    first = pages[0].json()["studies"][0]
    for tag in ("00080030", "00100030", "00201206", "00201208", "00080061"):
        assert tag in first, tag  # time, birth date (age), series and image counts, modalities
    newest = client.get("/api/studies", params={"limit": 1}).json()  # default: newest first
    assert _uids(newest) == [S(7)] and newest["total"] == len(STUDIES)
    for typed, expected in [
        ("bich", set()),
        ("binh", {S(2), S(3), S(6)}),
        ("van an", {S(0), S(1)}),
    ]:
        found = client.get("/api/studies", params={"name": typed}).json()
        assert set(_uids(found)) == expected and found["total"] == len(expected), typed
    accented = client.get("/api/studies", params={"name": "Bình*", "sort": "-StudyDate"}).json()
    assert _uids(accented) == [S(3), S(6), S(2)]
    audited = archive.audit.events(patient_id="BN005")
    assert any(event.action == "qido" and "study list" in event.detail for event in audited)


def test_bad_requests_are_4xx(client: TestClient) -> None:
    assert client.get("/api/studies", params={"sort": "PixelData"}).status_code == 400
    assert client.get("/api/studies", params={"sort": "a,b,c,d"}).status_code == 400
    assert client.get("/api/studies", params={"sort": "Patient Name"}).status_code == 400
    assert client.get("/api/studies", params={"limit": 101}).status_code == 422
    assert client.get("/api/studies", params={"offset": -1}).status_code == 422
    assert client.get("/api/studies", params={"name": "x" * 65}).status_code == 422
    assert client.get("/api/studies", params={"date": "2025"}).status_code == 400


def test_latest_change_grows_and_roles(
    client: TestClient, archive: Archive, anonymous_client: TestClient
) -> None:
    before = client.get("/api/studies/latest").json()["last_change"]
    ds = ct_slice(generate_uid(), generate_uid(), size=8)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin("import"))
    assert client.get("/api/studies/latest").json()["last_change"] > before
    assert anonymous_client.get("/api/studies").status_code == 401
    create_account(archive.sessions, "kiem.toan", "auditor-password-1", Role.AUDITOR)
    anonymous_client.auth = ("kiem.toan", "auditor-password-1")
    assert anonymous_client.get("/api/studies").status_code == 403
    assert anonymous_client.get("/api/studies/latest").status_code == 403
