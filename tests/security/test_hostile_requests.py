"""Requests that fuzzing answered with a 500: each now gets a correct answer or a 4xx with a reason.

Issue 15 item 7: 98 of 2,629 fuzzed QIDO requests gave 500 (includefield=all
at series level, ModalitiesInStudy at series level, sequence keys at series
level, offsets and integers beyond 64 bits); a 5,000-character multipart
boundary and a NaN share duration gave 500 too.
"""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from tests.dicom_factory import ct_slice, to_bytes

STUDY_A, STUDY_B = "1.2.826.0.1.3680043.8.498.901", "1.2.826.0.1.3680043.8.498.902"


@pytest.fixture
def studies(archive: Archive) -> Archive:
    """Study A holds a CT and an MR series, study B one CT series."""
    for index, (study, modality) in enumerate([(STUDY_A, "CT"), (STUDY_A, "MR"), (STUDY_B, "CT")]):
        ds = ct_slice(study_uid=study, index=index)
        ds.Modality = modality
        ds.SeriesNumber = index + 1
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    return archive


def _values(body: list[dict], tag: str) -> list[str]:  # type: ignore[type-arg]
    return sorted(str(item[tag]["Value"][0]) for item in body if item.get(tag, {}).get("Value"))


def test_includefield_all_below_study_level(client: TestClient, studies: Archive) -> None:
    for url in ("/dicom-web/series?includefield=all", "/dicom-web/instances?includefield=all"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text)
        body = response.json()
        assert len(body) == 3
        assert all("00280030" in item for item in body)  # PixelSpacing, from stored metadata


def test_modalities_in_study_below_study_level(client: TestClient, studies: Archive) -> None:
    series = client.get("/dicom-web/series?ModalitiesInStudy=MR")
    assert series.status_code == 200, series.text
    assert _values(series.json(), "00080060") == ["CT", "MR"]  # every series of study A
    assert {item["0020000D"]["Value"][0] for item in series.json()} == {STUDY_A}
    instances = client.get("/dicom-web/instances?ModalitiesInStudy=CT")
    assert instances.status_code == 200 and len(instances.json()) == 3
    sop_classes = client.get(
        "/dicom-web/series?SOPClassesInStudy=1.2.840.10008.5.1.4.1.1.2&Modality=MR"
    )
    assert sop_classes.status_code == 200 and _values(sop_classes.json(), "00080060") == ["MR"]


SEQUENCE_KEYS = [
    "OtherPatientIDsSequence.PatientID=BN0001",
    "OtherPatientIDsSequence=",
    "ReferencedStudySequence.ReferencedSOPInstanceUID=1.2.3",
    "includefield=OtherPatientIDsSequence",
    "includefield=ReferencedImageSequence",
    "RequestAttributesSequence.ScheduledProcedureStepID=1",
]


def test_sequence_keys_at_series_level(client: TestClient, studies: Archive) -> None:
    for query in SEQUENCE_KEYS:
        for level in ("series", "instances"):
            response = client.get(f"/dicom-web/{level}?{query}")
            assert response.status_code == 200, (level, query, response.text)


def test_integers_beyond_64_bits(client: TestClient, studies: Archive) -> None:
    for offset in ("18446744073709551616", "9" * 40, "9223372036854775808"):
        response = client.get(f"/dicom-web/series?offset={offset}")  # past the end: empty
        assert response.status_code == 200 and response.json() == [], offset
    for url in [
        "/dicom-web/series?SeriesNumber=18446744073709551616",
        "/dicom-web/instances?InstanceNumber=-" + "9" * 30,
        "/dicom-web/instances?InstanceNumber=2147483648",  # IS is 32 bits
        "/dicom-web/series?limit=" + "1" * 5000,  # longer than Python converts to an int
    ]:
        response = client.get(url)
        assert response.status_code == 400, (url[:60], response.text)
        assert response.json()["detail"]
    assert len(client.get("/dicom-web/series?SeriesNumber=2").json()) == 1
    assert client.get("/dicom-web/instances?InstanceNumber=2147483647").json() == []


def test_overlong_multipart_boundary_is_400(client: TestClient, studies: Archive) -> None:
    boundary = "b" * 5000
    response = client.post(
        "/dicom-web/studies",
        content=f"--{boundary}\r\n\r\n--{boundary}--\r\n".encode(),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    assert response.status_code == 400, response.text
    assert "boundary" in response.json()["detail"]


def test_non_finite_share_duration_is_422(client: TestClient, studies: Archive) -> None:
    for days in ("NaN", "Infinity", "-Infinity", "1e400"):
        response = client.post(
            f"/api/studies/{STUDY_A}/shares",
            content=f'{{"days": {days}}}',
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, (days, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "days"]
