"""QIDO-RS with real clients: dicomweb-client, and OHIF's requests exactly as it sends them."""

from __future__ import annotations

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.auth import grants
from pacs.auth.keys import signing_key
from tests.query_dimse.archive_factory import populate, series_uid, sop_uid, study_uid

S = study_uid


@pytest.fixture
def filled(archive: Archive) -> Archive:
    populate(archive)
    return archive


def _uids(body: list[dict[str, dict[str, list[str]]]], tag: str = "0020000D") -> set[str]:
    return {item[tag]["Value"][0] for item in body}


@pytest.fixture
def dicomweb(filled: Archive, live_http: str, admin_auth: tuple[str, str]) -> DICOMwebClient:
    session = requests.Session()
    session.auth = admin_auth
    return DICOMwebClient(url=f"{live_http}/dicom-web", session=session)


def test_dicomweb_client_searches(dicomweb: DICOMwebClient) -> None:
    found = dicomweb.search_for_studies(search_filters={"PatientName": "nguyen*"})
    assert _uids(found) == {S(0), S(1), S(6)}
    fuzzy = dicomweb.search_for_studies(
        search_filters={"PatientName": "an nguyen"}, fuzzymatching=True
    )
    assert _uids(fuzzy) == {S(0), S(1)}
    page = dicomweb.search_for_studies(limit=3, offset=0, fields=["StudyDescription"])
    assert len(page) == 3 and all("00081030" in item for item in page)
    rest = dicomweb.search_for_studies(limit=10, offset=3)
    assert len(rest) == 5 and not _uids(page) & _uids(rest)
    series = dicomweb.search_for_series(study_instance_uid=S(0))
    assert _uids(series, "0020000E") == {series_uid(0, 0), series_uid(0, 1)}
    mr_series = dicomweb.search_for_series(search_filters={"Modality": "MR"})
    assert len(mr_series) == 3
    instances = dicomweb.search_for_instances(
        study_instance_uid=S(0), series_instance_uid=series_uid(0, 0)
    )
    assert _uids(instances, "00080018") == {sop_uid(0, 0, i) for i in range(3)}
    everywhere = dicomweb.search_for_instances(search_filters={"SOPInstanceUID": sop_uid(2, 0, 0)})
    assert len(everywhere) == 1


def test_study_level_json(client: TestClient, filled: Archive) -> None:
    response = client.get("/dicom-web/studies", params={"StudyInstanceUID": S(3)})
    assert response.headers["content-type"].startswith("application/dicom+json")
    (study,) = response.json()
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Trần^Thị Bình"}]}
    assert study["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [3]
    assert study["00081190"]["Value"][0].endswith(f"/dicom-web/studies/{S(3)}")
    assert study["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}  # InstanceAvailability


OHIF_LIST = (
    "/dicom-web/studies?limit=101&offset=0&fuzzymatching=false"
    "&includefield=00081030%2C00080060%2C00080090%2C00100030"
)


OHIF_FILTERS: list[tuple[str, set[str]]] = [
    ("", {S(n) for n in range(8)}),
    ("&PatientName=*Binh*", {S(2), S(3), S(6)}),  # Bình and BINH: accents never matter
    ("&PatientName=*b%C3%ACnh*", {S(2), S(3), S(6)}),
    ("&00100020=*BN00*", {S(n) for n in range(7)}),
    ("&AccessionNumber=*ACC20*", {S(2), S(3)}),
    ("&StudyDescription=*CT*", {S(0), S(3), S(5), S(7)}),
    ("&ModalitiesInStudy=CT", {S(0), S(3), S(5), S(7)}),
    ("&StudyDate=20250101-20251231", {S(0), S(2), S(3), S(6)}),
    ("&PatientName=%2Anguyen%2A", {S(0), S(1), S(6)}),
]


def test_ohif_study_list_requests(client: TestClient, filled: Archive) -> None:
    for extra, expected in OHIF_FILTERS:
        response = client.get(OHIF_LIST + extra)
        assert response.status_code == 200, response.text
        body = response.json()
        assert _uids(body) == expected, extra
        assert all("00081030" in item and "00100030" in item for item in body)


def test_ohif_series_request(client: TestClient, filled: Archive) -> None:
    response = client.get(f"/dicom-web/studies/{S(3)}/series?includefield=0008103E,00080021")
    body = response.json()
    assert [item["00080060"]["Value"][0] for item in body] == ["CT", "MR"]
    assert all("0008103E" in item and "00080021" in item for item in body)


def test_limit_warning_and_all_fields(client: TestClient, filled: Archive) -> None:
    response = client.get("/dicom-web/studies?limit=2")
    assert len(response.json()) == 2 and "Warning" in response.headers
    assert "Warning" not in client.get("/dicom-web/studies?limit=20").headers
    full = client.get(f"/dicom-web/studies/{S(0)}/instances?includefield=all&limit=1").json()[0]
    assert "00280030" in full  # PixelSpacing, from the stored metadata
    assert "7FE00010" not in full


BAD_QUERIES = [  # malformed values: the query cannot mean anything
    "StudyDate=2025",
    "limit=abc",
    "limit=0",
    "offset=-1",
    "fuzzymatching=maybe",
]

# Keys a peer may send that this archive cannot match on: ignored, and named (PS3.18 8.3.4).
IGNORED_QUERIES = {
    "NoSuchKeyword=1": "NoSuchKeyword",
    "Modality=CT": "Modality",  # a series key at study level
    "PatientComments=x": "PatientComments",
    "00091010=x": "00091010",  # private
    "ReferencedStudySequence.ReferencedSOPInstanceUID=1.2": "ReferencedStudySequence",
    "OtherPatientIDsSequence=x": "OtherPatientIDsSequence",
    "PatientID.PatientName.PatientSex=x": "PatientID.PatientName.PatientSex",
    "includefield=NoSuchKeyword": "NoSuchKeyword",
    "_=1733300000000": "_",  # a browser's cache-buster
}


def test_bad_queries_get_400_with_a_reason(client: TestClient, filled: Archive) -> None:
    for query in BAD_QUERIES:
        response = client.get(f"/dicom-web/studies?{query}")
        assert response.status_code == 400, query
        assert response.json()["detail"], query


def test_unsupported_keys_are_ignored_with_a_warning(client: TestClient, filled: Archive) -> None:
    everything = _uids(client.get("/dicom-web/studies").json())
    for query, named in IGNORED_QUERIES.items():
        response = client.get(f"/dicom-web/studies?{query}")
        assert response.status_code == 200, (query, response.text)
        warning = response.headers.get("Warning", "")
        assert warning.startswith("299 ") and named in warning, (query, warning)
        assert _uids(response.json()) == everything, query
    # An ignored key does not stop the others from matching.
    both = client.get("/dicom-web/studies?PatientID=079080001234&NoSuchKeyword=1")
    assert both.status_code == 200 and _uids(both.json()) == {S(0), S(1)}
    assert "Warning" not in client.get("/dicom-web/studies?PatientID=079080001234").headers


def test_warning_text_is_bounded_ascii(client: TestClient, filled: Archive) -> None:
    response = client.get("/dicom-web/studies", params={'Tên"bệnh': "x", "Y" * 5000: "1"})
    assert response.status_code == 200
    warning = response.headers["Warning"]
    assert warning.isascii() and len(warning) < 1100
    assert warning.count('"') == 2  # the client's quote cannot end the quoted text early


def test_citizen_id_and_sequence_key(client: TestClient, filled: Archive) -> None:
    assert _uids(client.get("/dicom-web/studies?PatientID=079080001234").json()) == {S(0), S(1)}
    body = client.get("/dicom-web/studies?OtherPatientIDsSequence.PatientID=001175009876").json()
    assert _uids(body) == {S(2), S(3)}


def test_share_grant_sees_only_its_study(filled: Archive) -> None:
    info = grants.create_grant(filled.sessions, S(2), "admin", days=1)
    token = grants.link_token(signing_key(filled.settings), info.grant_id)
    with TestClient(create_app(filled)) as phone:
        phone.get(f"/s/{token}", follow_redirects=False)
        assert _uids(phone.get("/dicom-web/studies").json()) == {S(2)}
        assert phone.get(f"/dicom-web/studies/{S(3)}/series").status_code == 403
        assert len(phone.get(f"/dicom-web/studies/{S(2)}/series").json()) == 1


def test_anonymous_refused_and_searches_audited(
    anonymous_client: TestClient, client: TestClient, filled: Archive
) -> None:
    assert anonymous_client.get("/dicom-web/studies").status_code == 401
    client.get("/dicom-web/studies?PatientID=BN001")
    last = filled.audit.events()[-1]
    assert last.action == "qido" and "PatientID=BN001" in last.detail
