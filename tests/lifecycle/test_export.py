"""Exports as jobs (/api/exports): ZIP and DICOMDIR media, de-identified with a stable pseudonym.

Real parts: the HTTP app, the job runner threads (the export runs as a job and
the test polls its progress), pydicom's FileSet and DCMTK dcmdump reading the
media back, the index on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.fileset import FileSet

from pacs.archive import Archive
from pacs.jobs import RunningJobs
from tests.lifecycle.conftest import StoredStudy

ORIGINAL_NAME = "Nguyễn^Văn An"


def _export(client: TestClient, **body: object) -> dict:
    response = client.post("/api/exports", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def _finished(client: TestClient, export_id: int) -> dict:
    """Poll the export until the job is done (or failed), as a page would."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = client.get(f"/api/exports/{export_id}").json()
        if view["status"] in ("done", "failed"):
            return view
        time.sleep(0.05)
    raise AssertionError(f"export {export_id} not finished: {view}")


def _download(client: TestClient, export_id: int, folder: Path) -> zipfile.ZipFile:
    response = client.get(f"/api/exports/{export_id}/download")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    path = folder / f"{export_id}.zip"
    path.write_bytes(response.content)
    return zipfile.ZipFile(path)


def test_zip_export_carries_the_objects_as_served(
    archive: Archive, client: TestClient, runners: RunningJobs, study: StoredStudy, tmp_path: Path
) -> None:
    created = _export(client, study_uids=[study.study_uid], media="zip")
    assert created["status"] == "queued"
    view = _finished(client, created["id"])
    assert view["status"] == "done", view
    assert (view["total"], view["done"], view["progress"]) == (4, 4, 1.0)
    with _download(client, view["id"], tmp_path) as media:
        names = media.namelist()
        assert len(names) == 4 and all(n.startswith(study.study_uid + "/") for n in names)
        for result in study.results:
            (name,) = [n for n in names if n.endswith(result.sop_instance_uid + ".dcm")]
            assert media.read(name) == study.data[result.sop_instance_uid]
    actions = [e.action for e in archive.audit.events(study_uid=study.study_uid)]
    assert "export" in actions and "export-download" in actions


def test_dicomdir_export_reads_back_with_fileset_and_dcmdump(
    archive: Archive,
    client: TestClient,
    runners: RunningJobs,
    study: StoredStudy,
    tmp_path: Path,
    dcmtk: None,
) -> None:
    view = _finished(client, _export(client, study_uids=[study.study_uid], media="dicomdir")["id"])
    assert view["status"] == "done", view
    folder = tmp_path / "cd"
    with _download(client, view["id"], tmp_path) as media:
        names = media.namelist()
        assert "DICOMDIR" in names
        media.extractall(folder)
    fileset = FileSet(folder / "DICOMDIR")
    assert len(fileset) == 4
    found = fileset.find(PatientID="BN0001", StudyInstanceUID=study.study_uid)
    assert {i.SOPInstanceUID for i in found} == {r.sop_instance_uid for r in study.results}
    ds = found[0].load()
    assert str(ds.PatientName) == ORIGINAL_NAME and "PixelData" in ds
    # DCMTK reads the directory and every file it references (the offline viewer's
    # files beside them are no DICOM: a reader starts from the DICOMDIR, as dcmdump here).
    files = [str(folder / "DICOMDIR"), *(str(i.path) for i in fileset)]
    dump = subprocess.run(["dcmdump", *files], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert dump.stdout.count("(0008,0018)") == 4  # every image
    assert dump.stdout.count("(0004,1511)") == 4  # and the DICOMDIR's record of each
    assert "PATIENT" in dump.stdout and "IMAGE" in dump.stdout
    assert {"INDEX.HTM", "README.TXT", "VIEWER/VIEWER.JS"} <= set(names)


def test_deidentified_export_basic_profile_and_stable_pseudonym(
    archive: Archive,
    client: TestClient,
    runners: RunningJobs,
    study: StoredStudy,
    other_study: StoredStudy,
    tmp_path: Path,
) -> None:
    def exported(**options: object) -> list:
        view = _export(
            client, study_uids=[study.study_uid], media="zip", deidentify=True, **options
        )
        done = _finished(client, view["id"])
        assert done["status"] == "done", done
        with _download(client, done["id"], tmp_path) as media:
            raw = [media.read(n) for n in media.namelist()]
        assert not any(ORIGINAL_NAME.encode() in r or b"BN0001" in r for r in raw)
        return [dcmread(io.BytesIO(r)) for r in raw]

    first = exported()
    assert len(first) == 4
    pseudonym = first[0].PatientID
    assert pseudonym.startswith("ANON-") and {str(d.PatientName) for d in first} == {pseudonym}
    assert {d.PatientIdentityRemoved for d in first} == {"YES"}
    assert first[0].DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert first[0].StudyInstanceUID != study.study_uid
    assert len({d.StudyInstanceUID for d in first}) == 1  # the structure holds
    assert len({d.SeriesInstanceUID for d in first}) == 2
    assert first[0].StudyDate != "20261120" and first[0].AccessionNumber == ""
    sent = dcmread(io.BytesIO(study.data[study.results[0].sop_instance_uid]))
    (same,) = [d for d in first if d.InstanceNumber == sent.InstanceNumber and d.SeriesNumber == 1]
    assert same.PixelData == sent.PixelData

    # Again, with the dates option: the same pseudonym and UIDs, the dates kept.
    again = exported(retain_dates=True)
    assert {d.PatientID for d in again} == {pseudonym}
    assert {d.StudyInstanceUID for d in again} == {first[0].StudyInstanceUID}
    assert again[0].StudyDate == sent.StudyDate
    codes = {item.CodeValue for item in again[0].DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113106"}


def test_export_access_and_bad_requests(
    archive: Archive,
    client: TestClient,
    doctor_client: TestClient,
    study: StoredStudy,
) -> None:
    # No runner: the export stays queued, its download is refused until done.
    mine = _export(doctor_client, study_uids=[study.study_uid], media="dicomdir")
    assert doctor_client.get(f"/api/exports/{mine['id']}/download").status_code == 409
    theirs = _export(client, study_uids=[study.study_uid])
    assert doctor_client.get(f"/api/exports/{theirs['id']}").status_code == 404
    assert [e["id"] for e in doctor_client.get("/api/exports").json()["exports"]] == [mine["id"]]
    assert client.get(f"/api/exports/{mine['id']}").status_code == 200  # the administrator
    assert client.post("/api/exports", json={"study_uids": ["1.2.3"]}).status_code == 404
    assert client.post("/api/exports", json={"study_uids": []}).status_code == 422
    bad_media = {"study_uids": [study.study_uid], "media": "cd"}
    assert client.post("/api/exports", json=bad_media).status_code == 422
    assert client.get("/api/exports/99999999999").status_code == 404
    assert client.delete(f"/api/exports/{theirs['id']}").status_code == 204
    assert client.get(f"/api/exports/{theirs['id']}").status_code == 404


def test_dicomdir_of_an_object_without_study_id_invents_the_record_keys(
    archive: Archive, tmp_path: Path
) -> None:
    from pydicom.uid import generate_uid

    from pacs.archive.ingest import Origin
    from pacs.auth.principal import Kind, Principal, Role
    from tests.dicom_factory import ct_slice, to_bytes

    ds = ct_slice(generate_uid(), generate_uid(), size=8)
    for keyword in ("StudyID", "SeriesNumber", "StudyTime"):
        if keyword in ds:
            delattr(ds, keyword)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    who = Principal(Kind.USER, "admin", Role.ADMIN)
    # Without the offline viewer (a study that must fit a CD): DICOMDIR and the file only.
    view = archive.exports.create(who, [str(ds.StudyInstanceUID)], "dicomdir", viewer=False)
    done = archive.exports.run(view.id)  # what the job runner calls
    assert done.status == "done" and done.done == 1 and done.options["viewer"] is False
    folder = tmp_path / "cd"
    with zipfile.ZipFile(archive.exports.path(view.id)) as media:
        assert len(media.namelist()) == 2 and "INDEX.HTM" not in media.namelist()
        media.extractall(folder)
    (instance,) = FileSet(folder / "DICOMDIR")
    assert instance.StudyInstanceUID == ds.StudyInstanceUID
    assert instance.load().StudyID == "ACC0001"  # from the accession number, like dcmmkdir +I


def test_deidentified_dicomdir_media_viewer_shows_only_the_pseudonym(
    archive: Archive, client: TestClient, runners: RunningJobs, study: StoredStudy, tmp_path: Path
) -> None:
    """The offline viewer's files are made from the de-identified copies, never the originals."""
    created = _export(client, study_uids=[study.study_uid], media="dicomdir", deidentify=True)
    view = _finished(client, created["id"])
    assert view["status"] == "done", view
    escaped = json.dumps(ORIGINAL_NAME.split("^")[0])[1:-1].encode()  # as INDEX.JS writes it
    with _download(client, view["id"], tmp_path) as media:
        for name in media.namelist():
            raw = media.read(name)
            assert ORIGINAL_NAME.split("^")[0].encode() not in raw, name
            assert escaped not in raw and b"BN0001" not in raw, name
        index = media.read("VIEWER/DATA/INDEX.JS").decode("ascii")
    assert '"name":"ANON-' in index and '"id":"ANON-' in index
