"""Studies from other facilities: marked external, patient ID mapped to the local one by
citizen ID (an audited correction, the received bytes kept), left alone without one.
SQLite and PostgreSQL."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from tests.dicom_factory import ct_slice, to_bytes

CCCD = "001090012345"


def _store(archive: Archive, patient_id: str, citizen_id: str | None) -> str:
    study = generate_uid()
    ds = ct_slice(study, patient_id=patient_id)
    if citizen_id:
        other = Dataset()
        other.PatientID = citizen_id
        other.IssuerOfPatientID = "CCCD"
        other.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = [other]
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin("import"))
    return study


def test_external_study_mapped_by_citizen_id(archive: Archive, client: TestClient) -> None:
    local = _store(archive, "BN0001", CCCD)  # this hospital's patient, with the citizen ID
    outside = _store(archive, "TINH-77", CCCD)  # the same person under the other's ID
    unknown = _store(archive, "TINH-78", None)

    marked = client.post(f"/api/studies/{outside}/external", json={"source": "BV tỉnh (CD)"})
    assert marked.status_code == 200, marked.text
    assert marked.json() | {"marked_at": ""} == {
        "study_uid": outside,
        "external": True,
        "source": "BV tỉnh (CD)",
        "original_patient_id": "TINH-77",
        "mapped_patient_id": "BN0001",
        "citizen_id": CCCD,
        "marked_at": "",
    }
    assert {i.patient_id for i in archive.locate(outside)} == {"BN0001"}
    [version] = archive.correction_versions(outside)
    assert "citizen ID" in version.reason
    assert {i.patient_id for i in archive.locate(local)} == {"BN0001"}  # untouched

    plain = client.post(f"/api/studies/{unknown}/external", json={}).json()
    assert (plain["mapped_patient_id"], plain["source"]) == ("", "media")
    assert {i.patient_id for i in archive.locate(unknown)} == {"TINH-78"}

    listed = client.get("/api/external-studies").json()["studies"]
    assert sorted(s["study_uid"] for s in listed) == sorted([outside, unknown])
    assert archive.routing.external.are_external([local, outside]) == {outside}
    by_citizen = client.get("/api/external-studies", params={"citizen_id": CCCD}).json()
    assert [s["study_uid"] for s in by_citizen["studies"]] == [outside]
    assert client.post("/api/studies/1.2.3/external", json={}).status_code == 404
    actions = [e.action for e in archive.audit.events()]
    assert actions.count("external-mark") == 2


def test_lists_mark_external_studies(archive: Archive, client: TestClient) -> None:
    """The study list, QIDO and the reading worklist say which studies came from outside, and
    from where; the hospital's own studies carry no mark."""
    own = _store(archive, "BN0001", None)
    outside = _store(archive, "HUYEN-9", None)
    client.post(f"/api/studies/{outside}/external", json={"source": "facility:BV huyện"})

    listed = client.get("/api/studies").json()
    assert listed["external"] == {outside: "facility:BV huyện"}
    uids = {s["0020000D"]["Value"][0] for s in listed["studies"]}
    assert {own, outside} <= uids

    qido = {s["0020000D"]["Value"][0]: s for s in client.get("/dicom-web/studies").json()}
    assert qido[outside]["00090010"]["Value"] == ["PACS EXTERNAL"]
    assert qido[outside]["00091000"]["Value"] == ["facility:BV huyện"]
    assert "00091000" not in qido[own]

    worklist = client.get("/api/reading/worklist", params={"date": ""}).json()
    assert worklist["external"] == {outside: "facility:BV huyện"}
