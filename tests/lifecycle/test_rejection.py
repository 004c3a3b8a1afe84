"""IHE IOCM rejection: a coded reason, a KOS note (highdicom) stored, the objects gone, purged.

Real parts: the HTTP app (rejection API, QIDO, WADO-RS, FHIR), the DIMSE server
answering pynetdicom C-FIND and C-GET, the index on SQLite and PostgreSQL, the
filesystem store; the purge runs with an explicit clock instead of waiting.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from pydicom import dcmread

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.lifecycle.conftest import StoredStudy
from tests.lifecycle.test_delete import _c_get
from tests.query_dimse.scu import STUDY_ROOT, c_find, find_association, query

DICOM_JSON = {"Accept": "application/dicom+json"}
KOS = "1.2.840.10008.5.1.4.1.1.88.59"


def _reject(client: TestClient, study: str, code: str, **body: object):
    return client.post(f"/api/studies/{study}/rejections", json={"code": code, **body})


def _series(client: TestClient, study: str) -> dict[str, str]:
    """Series UID -> modality, through QIDO."""
    response = client.get(f"/dicom-web/studies/{study}/series", headers=DICOM_JSON)
    assert response.status_code in (200, 204, 404), response.text
    if response.status_code != 200:
        return {}
    return {s["0020000E"]["Value"][0]: s["00080060"]["Value"][0] for s in response.json()}


def _c_find_series(port: int, study: str) -> set[str]:
    with find_association(port, calling="FINDSCU") as assoc:
        outcome = c_find(
            assoc, STUDY_ROOT, query("SERIES", StudyInstanceUID=study, SeriesInstanceUID="")
        )
    assert outcome.status == 0x0000
    return {str(m.SeriesInstanceUID) for m in outcome.matches}


def _note(client: TestClient, study: str, series: str, sop: str):
    url = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    response = client.get(url, headers={"Accept": "multipart/related; type=application/dicom"})
    assert response.status_code == 200, response.text
    body = response.content
    return dcmread(io.BytesIO(body[body.index(b"DICM") - 128 :]))


def test_rejected_series_leaves_every_door_with_a_kos_note_and_is_purged(
    archive: Archive, client: TestClient, dimse_server: DimseServer, study: StoredStudy
) -> None:
    uid, (bad, good) = study.study_uid, study.series_uids
    rejected = study.instances(0)
    before = datetime.now(UTC)
    response = _reject(client, uid, "113001", series_uid=bad, reason="motion blur")
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["code"] == "113001" and answer["instances"] == 2
    assert answer["deletions"][0]["rejection_code"] == "113001"
    note_uid = answer["note_sop_instance_uid"]

    # Gone from QIDO, WADO-RS, C-FIND and C-GET; the note's series (KO) is in the study.
    series = _series(client, uid)
    assert bad not in series and series[good] == "CT"
    (note_series,) = [s for s, modality in series.items() if modality == "KO"]
    assert _c_find_series(dimse_server.port, uid) == {good, note_series}
    first = rejected[0]
    url = f"/dicom-web/studies/{uid}/series/{bad}/instances/{first.sop_instance_uid}"
    assert client.get(url).status_code == 404
    fhir = client.get(f"/fhir/ImagingStudy/{uid}")  # the FHIR door reads the same index
    assert fhir.status_code == 200, fhir.text
    assert good in fhir.text and bad not in fhir.text
    _, sent = _c_get(dimse_server.port, uid)
    assert sent == 2  # the good series' CT images (the C-GET offered no KOS context)

    # The note: a KOS titled with the code, referencing exactly the rejected instances.
    note = _note(client, uid, note_series, note_uid)
    assert note.SOPClassUID == KOS and note.StudyInstanceUID == uid
    title = note.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator) == ("113001", "DCM")
    referenced = {
        item.ReferencedSOPInstanceUID
        for evidence in note.CurrentRequestedProcedureEvidenceSequence
        for series_item in evidence.ReferencedSeriesSequence
        for item in series_item.ReferencedSOPSequence
    }
    assert referenced == {r.sop_instance_uid for r in rejected}
    assert note.PatientID == "BN0001"
    assert note.PatientName == "Nguyễn^Văn An"  # written in UTF-8, not as "Nguy?n^V?n An"

    # Audited; purged after the delay, not before; the note and the good series stay.
    actions = [e.action for e in archive.audit.events(study_uid=uid)]
    assert "reject" in actions and "delete" in actions
    assert archive.purge_due(before + timedelta(hours=23)).deletions == 0
    assert all(archive.store.stat(r.blob_key) is not None for r in rejected)
    assert archive.purge_due(before + timedelta(hours=25)).deletions == 1
    assert all(archive.store.stat(r.blob_key) is None for r in rejected)
    assert set(_series(client, uid)) == {good, note_series}


def test_rejection_of_a_study_and_of_instances(
    archive: Archive, client: TestClient, study: StoredStudy, other_study: StoredStudy
) -> None:
    # Two instances of a series, wrong worklist entry: the series keeps its other instance.
    one = other_study.results[0]
    response = _reject(
        client,
        other_study.study_uid,
        "113038",
        series_uid=one.series_uid,
        sop_instance_uids=[one.sop_instance_uid],
    )
    assert response.status_code == 201, response.text
    assert list(_series(client, other_study.study_uid).values()) == ["KO"]

    # A whole study, wrong patient: only the rejection note remains of it.
    response = _reject(client, study.study_uid, "113037", reason="wrong patient")
    assert response.status_code == 201, response.text
    assert response.json()["instances"] == 4
    assert list(_series(client, study.study_uid).values()) == ["KO"]
    deletions = client.get("/api/deletions", params={"study_uid": study.study_uid}).json()
    assert deletions["deletions"][0]["rejection_code"] == "113037"
    assert "113037" in deletions["deletions"][0]["reason"]


def test_legal_hold_blocks_rejection_and_purge_roles_and_bad_requests(
    archive: Archive,
    client: TestClient,
    doctor_client: TestClient,
    study: StoredStudy,
) -> None:
    uid, (bad, good) = study.study_uid, study.series_uids
    assert _reject(doctor_client, uid, "113001").status_code == 403
    assert _reject(client, uid, "999999").status_code == 400
    assert _reject(client, uid, "113001", sop_instance_uids=["1.2.3"]).status_code == 400
    assert _reject(client, "1.2.3.4", "113001").status_code == 404
    assert _reject(client, uid, "113001", series_uid="1.2.3").status_code == 404

    # A hold set after a rejection keeps its bytes past the delay, until released.
    assert _reject(client, uid, "113039", series_uid=bad).status_code == 201
    hold = client.put(f"/api/studies/{uid}/hold", json={"reason": "court order"})
    assert hold.status_code == 200, hold.text
    later = datetime.now(UTC) + timedelta(days=3)
    assert archive.purge_due(later).deletions == 0
    assert all(archive.store.stat(r.blob_key) is not None for r in study.instances(0))
    # ... and refuses a new rejection (audited).
    assert _reject(client, uid, "113001", series_uid=good).status_code == 409
    assert good in _series(client, uid)
    refused = [e for e in archive.audit.events(study_uid=uid) if e.action == "reject"]
    assert refused[-1].outcome.startswith("failure")
    assert client.delete(f"/api/studies/{uid}/hold").status_code == 204
    assert archive.purge_due(later).deletions == 1
