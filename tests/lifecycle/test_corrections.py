"""Audited corrections: every door presents the corrected values, the received bytes stay.

Real parts: the HTTP app (admin API, QIDO, WADO-RS metadata and instances),
pynetdicom C-FIND against the DIMSE server, the index on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from pacs.jobs.runner import Runner
from pacs.reconcile import check
from tests.dicom_factory import ct_slice, to_bytes
from tests.lifecycle.conftest import StoredStudy
from tests.query_dimse.scu import STUDY_ROOT, c_find, find_association, query

DICOM_JSON = {"Accept": "application/dicom+json"}
NEW_NAME = "Trần^Thị Bình"


def _correct(client: TestClient, uid: str, reason: str = "registration error", **attributes: str):
    return client.post(
        f"/api/studies/{uid}/corrections", json={"attributes": attributes, "reason": reason}
    )


def _instance_bytes(client: TestClient, study: StoredStudy, index: int = 0) -> bytes:
    item = study.results[index]
    url = (
        f"/dicom-web/studies/{study.study_uid}/series/{item.series_uid}"
        f"/instances/{item.sop_instance_uid}"
    )
    response = client.get(url, headers={"Accept": "multipart/related; type=application/dicom"})
    assert response.status_code == 200, response.text
    body = response.content
    start = body.index(b"DICM") - 128
    return body[start:]


def _c_find(port: int, **keys: str) -> list:
    with find_association(port, calling="FINDSCU") as assoc:
        outcome = c_find(
            assoc,
            STUDY_ROOT,
            query("STUDY", **{"PatientName": "", "PatientID": "", "AccessionNumber": "", **keys}),
        )
    assert outcome.status == 0x0000
    return outcome.matches


def test_correction_is_presented_by_every_door_and_versioned(
    archive: Archive,
    client: TestClient,
    dimse_server: DimseServer,
    study: StoredStudy,
    other_study: StoredStudy,
) -> None:
    uid = study.study_uid
    response = _correct(client, uid, PatientName=NEW_NAME, AccessionNumber="ACC9999")
    assert response.status_code == 200, response.text
    versions = response.json()["versions"]
    # The accession is this study's; the name is the patient's, so both studies change.
    assert [(v["study_uid"], v["version"]) for v in versions] == [
        (uid, 1),
        (other_study.study_uid, 1),
    ]
    assert versions[0]["changes"] == {
        "AccessionNumber": {"old": "ACC0001", "new": "ACC9999"},
        "PatientName": {"old": "Nguyễn^Văn An", "new": NEW_NAME},
    }
    assert versions[1]["changes"] == {"PatientName": {"old": "Nguyễn^Văn An", "new": NEW_NAME}}

    # QIDO matches and answers the corrected values; the old accession no longer matches.
    found = client.get("/dicom-web/studies", params={"AccessionNumber": "ACC9999"}).json()
    assert [item["0020000D"]["Value"][0] for item in found] == [uid]
    assert found[0]["00100010"]["Value"][0]["Alphabetic"] == NEW_NAME
    old = client.get("/dicom-web/studies", params={"AccessionNumber": "ACC0001"})
    assert old.status_code == 204 or [i["0020000D"]["Value"][0] for i in old.json()] == [
        other_study.study_uid
    ]
    by_name = client.get("/dicom-web/studies", params={"PatientName": "tran thi binh"})
    assert by_name.status_code == 200, "the folded name form is corrected too"
    assert {i["0020000D"]["Value"][0] for i in by_name.json()} == {uid, other_study.study_uid}
    # C-FIND answers the same.
    matches = _c_find(dimse_server.port, StudyInstanceUID=uid)
    assert [str(m.AccessionNumber) for m in matches] == ["ACC9999"]
    assert str(matches[0].PatientName) == NEW_NAME

    # WADO-RS metadata and the instance itself carry the corrected values ...
    metadata = client.get(f"/dicom-web/studies/{uid}/metadata", headers=DICOM_JSON).json()
    assert len(metadata) == 4
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in metadata} == {NEW_NAME}
    assert {m["00080050"]["Value"][0] for m in metadata} == {"ACC9999"}
    served = dcmread(io.BytesIO(_instance_bytes(client, study)))
    sent = dcmread(io.BytesIO(study.data[study.results[0].sop_instance_uid]))
    assert str(served.PatientName) == NEW_NAME and served.AccessionNumber == "ACC9999"
    assert served.PixelData == sent.PixelData and served.SOPInstanceUID == sent.SOPInstanceUID
    other = dcmread(io.BytesIO(_instance_bytes(client, other_study)))
    assert str(other.PatientName) == NEW_NAME and other.AccessionNumber == "ACC0001"

    # ... while the object as received is kept, byte for byte.
    first = study.results[0]
    with archive.open_blob(first.blob_key) as blob:
        assert hashlib.sha256(blob.read()).hexdigest() == first.sha256
    report = check(archive)
    assert report.consistent, report.as_dict()
    assert first.blob_key in report.kept_originals

    # A second correction is version 2, made from the original; the versions list both.
    response = _correct(client, uid, "typo in the accession", AccessionNumber="ACC1000")
    assert [v["version"] for v in response.json()["versions"]] == [2]
    listed = client.get(f"/api/studies/{uid}/versions").json()
    assert [v["version"] for v in listed["versions"]] == [1, 2]
    assert listed["versions"][1]["changes"] == {
        "AccessionNumber": {"old": "ACC9999", "new": "ACC1000"}
    }
    assert listed["versions"][1]["reason"] == "typo in the accession"
    assert listed["versions"][1]["corrected_by"] == "admin"
    assert listed["corrected"] == {"AccessionNumber": "ACC1000", "PatientName": NEW_NAME}
    served = dcmread(io.BytesIO(_instance_bytes(client, study)))
    assert served.AccessionNumber == "ACC1000" and str(served.PatientName) == NEW_NAME
    report = check(archive)
    assert report.consistent and report.orphan_blobs == [], report.as_dict()
    assert len(report.kept_originals) == 5  # one per corrected instance, no stale copies

    # Audited: who, which patient, which study, old and new values, why.
    corrections = [e for e in archive.audit.events(study_uid=uid) if e.action == "correct"]
    assert len(corrections) == 2
    assert corrections[0].actor == "admin" and corrections[0].patient_id == "BN0001"
    assert "registration error" in corrections[0].detail and NEW_NAME in corrections[0].detail


def test_patient_id_correction_moves_the_study(
    archive: Archive,
    client: TestClient,
    dimse_server: DimseServer,
    study: StoredStudy,
    other_study: StoredStudy,
) -> None:
    response = _correct(client, study.study_uid, "wrong patient chosen", PatientID="BN0002")
    assert response.status_code == 200, response.text
    (version,) = response.json()["versions"]
    assert version["changes"] == {"PatientID": {"old": "BN0001", "new": "BN0002"}}
    assert [m.StudyInstanceUID for m in _c_find(dimse_server.port, PatientID="BN0002")] == [
        study.study_uid
    ]
    assert [m.StudyInstanceUID for m in _c_find(dimse_server.port, PatientID="BN0001")] == [
        other_study.study_uid
    ]
    served = dcmread(io.BytesIO(_instance_bytes(client, study)))
    assert served.PatientID == "BN0002"
    events = [e for e in archive.audit.events(study_uid=study.study_uid) if e.action == "correct"]
    assert events[0].patient_id == "BN0002"


def test_bad_corrections_are_refused_and_change_nothing(
    archive: Archive, client: TestClient, doctor_client: TestClient, study: StoredStudy
) -> None:
    uid = study.study_uid
    assert _correct(client, uid, SOPInstanceUID="1.2.3").status_code == 400
    assert _correct(client, uid, PatientBirthDate="1980-01-01").status_code == 400
    assert _correct(client, uid, PatientSex="X").status_code == 400
    assert _correct(client, uid, PatientID="").status_code == 400
    assert _correct(client, uid, reason="", PatientName="A^B").status_code == 422
    assert _correct(client, "1.2.3.4", PatientName="A^B").status_code == 404
    assert _correct(doctor_client, uid, PatientName="A^B").status_code == 403
    assert doctor_client.get(f"/api/studies/{uid}/versions").status_code == 403
    assert client.get("/api/studies/1.2.3.4/versions").status_code == 404
    assert client.get(f"/api/studies/{uid}/versions").json()["versions"] == []
    # The same values again: no change, no version.
    assert _correct(client, uid, PatientName="Nguyễn^Văn An").json()["versions"] == []
    metadata = client.get(f"/dicom-web/studies/{uid}/metadata", headers=DICOM_JSON).json()
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in metadata} == {"Nguyễn^Văn An"}


def test_late_instances_and_deletes_of_corrected_studies(
    archive: Archive, client: TestClient, study: StoredStudy
) -> None:
    uid = study.study_uid
    task_name = "reapply-corrections"
    assert _correct(client, uid, StudyDescription="CT ngực").status_code == 200
    assert archive.corrections.pending() == []
    late = ct_slice(uid, study.series_uids[0], index=5, size=16, seed=55)
    late.SOPInstanceUID = late.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    archive.ingest(io.BytesIO(to_bytes(late)), Origin(door="import"))
    # The leader's periodic task finds it and queues a job, which corrects the late one only.
    assert [uid_ for uid_, _ in archive.corrections.pending()] == [uid]
    recent = datetime.now(UTC) - timedelta(minutes=5)
    assert [uid_ for uid_, _ in archive.corrections.pending(recent)] == [uid]
    assert archive.corrections.pending(datetime.now(UTC) + timedelta(hours=1)) == []
    (task,) = [t for t in archive.jobs.periodic.due(float("inf")) if t.name == task_name]
    task.run()
    task.run()  # de-duplicated while nothing new arrives
    assert archive.jobs.list(kind=task_name)[1] == 1
    assert Runner(archive.jobs.queue, archive.jobs.handlers, threads=1).run_once()
    assert archive.corrections.pending() == []
    assert archive.reapply_corrections(uid) == 0
    metadata = client.get(f"/dicom-web/studies/{uid}/metadata", headers=DICOM_JSON).json()
    assert {m["00081030"]["Value"][0] for m in metadata} == {"CT ngực"}

    originals = archive.lifecycle.kept_originals()
    assert {r.blob_key for r in study.results} < originals and len(originals) == 5
    keys = originals | {i.blob_key for i in archive.locate(uid)}  # and the served copies
    assert len(keys) == 10
    assert client.delete(f"/dicom-web/studies/{uid}", params={"reason": "test"}).status_code == 204
    purged = archive.purge_due(datetime.now(UTC) + timedelta(days=2))
    assert purged.blobs_removed == len(keys)
    assert all(archive.store.stat(key) is None for key in keys)
    assert archive.lifecycle.kept_originals() == set()


@pytest.mark.parametrize("charset", ["ISO_IR 100", None])
def test_a_name_outside_the_received_character_set_is_served_in_utf8(
    archive: Archive, client: TestClient, charset: str | None
) -> None:
    ds = ct_slice(patient_name="Nguyen^Van An", charset=charset, size=16)
    if charset is not None:
        ds.InstitutionName = "Hôpital Saint-Éloi"  # Latin-1 bytes that must survive re-encoding
    data = to_bytes(ds)
    result = archive.ingest(io.BytesIO(data), Origin(door="import"))
    response = _correct(client, result.study_uid, PatientName=NEW_NAME)
    assert response.status_code == 200, response.text
    stored = StoredStudy(result.study_uid, [result.series_uid], [result], {})
    served = dcmread(io.BytesIO(_instance_bytes(client, stored)))
    assert str(served.PatientName) == NEW_NAME
    assert served.SpecificCharacterSet == "ISO_IR 192"
    if charset is not None:
        assert served.InstitutionName == "Hôpital Saint-Éloi"  # re-encoded, not garbled


def test_a_store_failure_during_a_correction_is_finished_by_the_scan(
    archive: Archive, client: TestClient, study: StoredStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pacs.archive.errors import StorageError

    uid = study.study_uid
    real_put = archive.store.put
    calls = {"n": 0}

    def failing_put(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # the disk fills after the first corrected copy
            raise StorageError("no space left on device")
        return real_put(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archive.store, "put", failing_put)
    response = _correct(client, uid, AccessionNumber="ACC7777")
    assert response.status_code == 503 and "Retry-After" in response.headers
    # The index is corrected and versioned; one object already serves its copy.
    assert [v.version for v in archive.correction_versions(uid)] == [1]
    recent = datetime.now(UTC) - timedelta(minutes=5)
    assert [found for found, _ in archive.corrections.pending(recent)] == [uid]
    monkeypatch.setattr(archive.store, "put", real_put)
    assert archive.reapply_corrections(uid) == 3
    assert archive.corrections.pending() == []
    for index in range(4):
        assert dcmread(io.BytesIO(_instance_bytes(client, study, index))).AccessionNumber == (
            "ACC7777"
        )
    assert check(archive).consistent
