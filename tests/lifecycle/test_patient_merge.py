"""Patient merge and split (/api/patients): audited, undoable corrections, old ID findable.

Real parts: the HTTP app (admin API, QIDO), pynetdicom C-FIND against the DIMSE
server and DCMTK findscu, the index on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import subprocess

from fastapi.testclient import TestClient
from pydicom import dcmread

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from tests.lifecycle.conftest import StoredStudy, store_study
from tests.lifecycle.test_corrections import _c_find, _instance_bytes


def _qido(client: TestClient, **params: str) -> list[dict]:
    response = client.get("/dicom-web/studies", params=params)
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else []


def _uids(found: list[dict]) -> set[str]:
    return {item["0020000D"]["Value"][0] for item in found}


def _findscu_patient_ids(port: int, patient_id: str) -> list[str]:
    args = ["findscu", "-S", "-aet", "FINDSCU", "-aec", "PACS", "-k", "QueryRetrieveLevel=STUDY"]
    args += ["-k", f"PatientID={patient_id}", "-k", "StudyInstanceUID", "127.0.0.1", str(port)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [
        line.split("[", 1)[1].split("]", 1)[0]
        for line in (result.stdout + result.stderr).splitlines()
        if "(0010,0020)" in line and "[" in line
    ]


def test_merge_moves_studies_old_id_findable_and_undo_restores(
    archive: Archive,
    client: TestClient,
    dimse_server: DimseServer,
    study: StoredStudy,
    dcmtk: None,
) -> None:
    duplicate = store_study(
        archive, series=1, per_series=2, patient_id="BN0099", patient_name="Nguyen^Van An"
    )
    response = client.post(
        "/api/patients/merge",
        json={
            "source": {"patient_id": "BN0099"},
            "target": {"patient_id": "BN0001"},
            "reason": "duplicate record opened at the front desk",
        },
    )
    assert response.status_code == 200, response.text
    move = response.json()
    assert move["kind"] == "merge" and move["studies"] == [duplicate.study_uid]

    # The studies are the target's now; the old ID still finds them, through both doors.
    assert _uids(_qido(client, PatientID="BN0001")) == {study.study_uid, duplicate.study_uid}
    by_old = _qido(client, PatientID="BN0099")
    assert _uids(by_old) == {study.study_uid, duplicate.study_uid}
    assert {item["00100020"]["Value"][0] for item in by_old} == {"BN0001"}
    found = _c_find(dimse_server.port, PatientID="BN0099")
    assert {m.StudyInstanceUID for m in found} == {study.study_uid, duplicate.study_uid}
    assert {m.PatientID for m in found} == {"BN0001"}
    assert sorted(_findscu_patient_ids(dimse_server.port, "BN0099")) == ["BN0001", "BN0001"]
    # The served objects carry the target's identity; the move is a versioned correction.
    served = dcmread(io.BytesIO(_instance_bytes(client, duplicate)))
    assert served.PatientID == "BN0001" and str(served.PatientName) == "Nguyễn^Văn An"
    versions = client.get(f"/api/studies/{duplicate.study_uid}/versions").json()["versions"]
    assert versions[-1]["changes"]["PatientID"] == {"old": "BN0099", "new": "BN0001"}
    listed = client.get("/api/patients/moves", params={"patient_id": "BN0099"}).json()["moves"]
    assert [m["id"] for m in listed] == [move["id"]]
    actions = [e.action for e in archive.audit.events()]
    assert "merge" in actions and "correct" in actions

    # Undo: the studies go back to a BN0099 record with its own name, the alias goes.
    undo = client.post(f"/api/patients/moves/{move['id']}/undo", json={"reason": "wrong merge"})
    assert undo.status_code == 200, undo.text
    assert undo.json()["undone_by"] == "admin"
    assert _uids(_qido(client, PatientID="BN0099")) == {duplicate.study_uid}
    assert _uids(_qido(client, PatientID="BN0001")) == {study.study_uid}
    back = _qido(client, StudyInstanceUID=duplicate.study_uid)
    assert back[0]["00100010"]["Value"][0]["Alphabetic"] == "Nguyen^Van An"
    served = dcmread(io.BytesIO(_instance_bytes(client, duplicate)))
    assert served.PatientID == "BN0099" and str(served.PatientName) == "Nguyen^Van An"
    assert [m.StudyInstanceUID for m in _c_find(dimse_server.port, PatientID="BN0099")] == [
        duplicate.study_uid
    ]
    again = client.post(f"/api/patients/moves/{move['id']}/undo", json={"reason": "twice"})
    assert again.status_code == 400
    assert "unmerge" in [e.action for e in archive.audit.events()]


def test_split_moves_chosen_studies_without_alias(
    archive: Archive, client: TestClient, study: StoredStudy, other_study: StoredStudy
) -> None:
    response = client.post(
        "/api/patients/split",
        json={
            "source": {"patient_id": "BN0001"},
            "target": {"patient_id": "BN0777"},
            "study_uids": [other_study.study_uid],
            "attributes": {"PatientName": "Lê^Thị Hoa", "PatientSex": "F"},
            "reason": "study taken on the wrong patient",
        },
    )
    assert response.status_code == 200, response.text
    assert _uids(_qido(client, PatientID="BN0777")) == {other_study.study_uid}
    # No alias: the study was never BN0001's, so BN0001 no longer finds it, nor BN0777 the other.
    assert _uids(_qido(client, PatientID="BN0001")) == {study.study_uid}
    moved = _qido(client, StudyInstanceUID=other_study.study_uid)[0]
    assert moved["00100010"]["Value"][0]["Alphabetic"] == "Lê^Thị Hoa"
    kept = _qido(client, StudyInstanceUID=study.study_uid)[0]
    assert kept["00100010"]["Value"][0]["Alphabetic"] == "Nguyễn^Văn An"

    undo = client.post(f"/api/patients/moves/{response.json()['id']}/undo", json={"reason": "no"})
    assert undo.status_code == 200, undo.text
    assert _uids(_qido(client, PatientID="BN0001")) == {study.study_uid, other_study.study_uid}
    assert _qido(client, PatientID="BN0777") == []


def test_bad_merges_are_refused(
    archive: Archive, client: TestClient, doctor_client: TestClient, study: StoredStudy
) -> None:
    def merge(source: str, target: str, who: TestClient = client, **extra: object) -> int:
        body = {"source": {"patient_id": source}, "target": {"patient_id": target}, "reason": "r"}
        return who.post("/api/patients/merge", json={**body, **extra}).status_code

    assert merge("NOBODY", "BN0001") == 404
    assert merge("BN0001", "BN0001") == 400
    assert merge("BN0001", "X" * 65) == 422
    assert merge("BN0001", "BN0002", reason=" ") == 400
    assert merge("BN0001", "BN0002", who=doctor_client) == 403
    split = client.post(
        "/api/patients/split",
        json={
            "source": {"patient_id": "BN0001"},
            "target": {"patient_id": "BN0002"},
            "study_uids": ["1.2.3"],
            "reason": "r",
        },
    )
    assert split.status_code == 404
    assert client.post("/api/patients/moves/99999/undo", json={"reason": "r"}).status_code == 404
    assert _uids(_qido(client, PatientID="BN0001")) == {study.study_uid}


def test_series_moved_to_another_study_and_back(
    archive: Archive,
    client: TestClient,
    dimse_server: DimseServer,
    study: StoredStudy,
) -> None:
    right = store_study(archive, series=1, per_series=1, patient_id="BN0555", patient_name="Lê^Hoa")
    wrong_series = study.series_uids[1]
    moved_items = study.instances(1)
    response = client.post(
        f"/api/studies/{study.study_uid}/series/{wrong_series}/move",
        json={"target_study_uid": right.study_uid, "reason": "picked the wrong worklist entry"},
    )
    assert response.status_code == 200, response.text
    move = response.json()
    assert move["kind"] == "series"

    # QIDO and C-FIND list the series under the right study and patient.
    def series_of(uid: str) -> set[str]:
        found = client.get(f"/dicom-web/studies/{uid}/series")
        return (
            {s["0020000E"]["Value"][0] for s in found.json()} if found.status_code == 200 else set()
        )

    assert series_of(right.study_uid) == {right.series_uids[0], wrong_series}
    assert series_of(study.study_uid) == {study.series_uids[0]}
    matches = _c_find(dimse_server.port, PatientID="BN0555")
    assert [m.StudyInstanceUID for m in matches] == [right.study_uid]
    # The served object carries the target's study UID and patient; the original is kept.
    item = moved_items[0]
    url = (
        f"/dicom-web/studies/{right.study_uid}/series/{wrong_series}"
        f"/instances/{item.sop_instance_uid}"
    )
    body = client.get(url, headers={"Accept": "multipart/related; type=application/dicom"})
    assert body.status_code == 200, body.text
    served = dcmread(io.BytesIO(body.content[body.content.index(b"DICM") - 128 :]))
    assert served.StudyInstanceUID == right.study_uid and served.PatientID == "BN0555"
    assert str(served.PatientName) == "Lê^Hoa"
    with archive.open_blob(item.blob_key) as blob:
        assert blob.read() == study.data[item.sop_instance_uid]
    metadata = client.get(
        f"/dicom-web/studies/{right.study_uid}/series/{wrong_series}/metadata",
        headers={"Accept": "application/dicom+json"},
    ).json()
    assert {m["0020000D"]["Value"][0] for m in metadata} == {right.study_uid}
    versions = client.get(f"/api/studies/{right.study_uid}/versions").json()["versions"]
    assert versions[-1]["changes"] == {"series_added": {"old": "", "new": wrong_series}}

    # Undo: back where it came from.
    undo = client.post(f"/api/patients/moves/{move['id']}/undo", json={"reason": "mistake"})
    assert undo.status_code == 200, undo.text
    assert series_of(study.study_uid) == set(study.series_uids)
    assert series_of(right.study_uid) == {right.series_uids[0]}
    back = client.get(
        url.replace(right.study_uid, study.study_uid),
        headers={"Accept": "multipart/related; type=application/dicom"},
    )
    assert back.status_code == 200
    again = dcmread(io.BytesIO(back.content[back.content.index(b"DICM") - 128 :]))
    assert again.StudyInstanceUID == study.study_uid and again.PatientID == "BN0001"

    # A series moved to a new study of another patient; the emptied source study goes.
    single = store_study(archive, series=1, per_series=1, patient_id="BN0666")
    response = client.post(
        f"/api/studies/{single.study_uid}/series/{single.series_uids[0]}/move",
        json={"patient": {"patient_id": "BN0555"}, "reason": "wrong patient"},
    )
    assert response.status_code == 200, response.text
    new_study = response.json()["target"]["patient_id"]
    assert series_of(new_study) == {single.series_uids[0]}
    assert series_of(single.study_uid) == set()
    assert _qido(client, StudyInstanceUID=single.study_uid) == []
    assert {m.StudyInstanceUID for m in _c_find(dimse_server.port, PatientID="BN0555")} == {
        right.study_uid,
        new_study,
    }
    bad = client.post(
        f"/api/studies/{study.study_uid}/series/{wrong_series}/move",
        json={"reason": "neither target"},
    )
    assert bad.status_code == 400
    assert "move-series" in [e.action for e in archive.audit.events()]
