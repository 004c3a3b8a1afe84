"""Deleting studies, series and instances: gone from every door at once, purged after the delay.

Real parts: the HTTP app (QIDO, WADO, DELETE, the admin API), the DIMSE server
answering pynetdicom C-FIND and C-GET, the index on SQLite and PostgreSQL, the
filesystem store; the purge runs with an explicit clock instead of waiting.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.dimse.server import DimseServer
from pacs.reconcile import check
from tests.lifecycle.conftest import StoredStudy
from tests.query_dimse.scu import STUDY_ROOT, c_find, find_association, query

DICOM_JSON = {"Accept": "application/dicom+json"}


def _study_uids(client: TestClient) -> set[str]:
    response = client.get("/dicom-web/studies", headers=DICOM_JSON)
    assert response.status_code in (200, 204), response.text
    if response.status_code == 204:
        return set()
    return {item["0020000D"]["Value"][0] for item in response.json()}


def _instance_uids(client: TestClient, study_uid: str) -> set[str]:
    response = client.get(f"/dicom-web/studies/{study_uid}/instances", headers=DICOM_JSON)
    assert response.status_code in (200, 204, 404), response.text
    if response.status_code != 200:
        return set()
    return {item["00080018"]["Value"][0] for item in response.json()}


def _c_find_studies(port: int, study_uid: str) -> int:
    with find_association(port, calling="FINDSCU") as assoc:
        outcome = c_find(
            assoc, STUDY_ROOT, query("STUDY", StudyInstanceUID=study_uid, PatientID="")
        )
    assert outcome.status == 0x0000, hex(outcome.status)
    return len(outcome.matches)


def _c_get(port: int, study_uid: str) -> tuple[int, int]:
    """(status, completed sub-operations) of a C-GET of the study over pynetdicom."""
    from pydicom.dataset import Dataset
    from pynetdicom import evt
    from pynetdicom.presentation import build_role

    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="FINDSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    final = -1
    try:
        for status, _ in assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet):
            assert status is not None and "Status" in status
            final = int(status.Status)
    finally:
        assoc.release()
    return final, len(received)


def test_deleted_study_is_gone_from_every_door_and_purged_after_the_delay(
    archive: Archive,
    client: TestClient,
    dimse_server: DimseServer,
    study: StoredStudy,
    other_study: StoredStudy,
) -> None:
    uid = study.study_uid
    keys = [result.blob_key for result in study.results]
    assert _study_uids(client) == {uid, other_study.study_uid}
    assert _c_find_studies(dimse_server.port, uid) == 1
    assert _c_get(dimse_server.port, uid) == (0x0000, 4)
    assert client.get(f"/dicom-web/studies/{uid}/metadata", headers=DICOM_JSON).status_code == 200

    before = datetime.now(UTC)
    response = client.delete(f"/dicom-web/studies/{uid}", params={"reason": "wrong patient"})
    assert response.status_code == 204, response.text

    # Hidden at once from QIDO, WADO-RS, WADO-URI, C-FIND and C-GET.
    assert _study_uids(client) == {other_study.study_uid}
    assert client.get(f"/dicom-web/studies/{uid}/metadata", headers=DICOM_JSON).status_code == 404
    first = study.results[0]
    instance_url = (
        f"/dicom-web/studies/{uid}/series/{first.series_uid}/instances/{first.sop_instance_uid}"
    )
    assert client.get(instance_url).status_code == 404
    assert _c_find_studies(dimse_server.port, uid) == 0
    assert _c_find_studies(dimse_server.port, other_study.study_uid) == 1
    status, sent = _c_get(dimse_server.port, uid)
    assert sent == 0 and status != 0xFF00
    # The other study of the same patient is untouched, and the patient stays.
    assert len(_instance_uids(client, other_study.study_uid)) == 1

    # The bytes stay until the purge; `pacs check` sees no orphans meanwhile.
    assert all(archive.store.stat(key) is not None for key in keys)
    report = check(archive, repair=True)
    assert report.orphan_blobs == [] and sorted(report.awaiting_purge) == sorted(keys)
    assert report.adopted == [] and _study_uids(client) == {other_study.study_uid}

    # Not yet due (default delay 24 h): nothing purged.
    assert archive.purge_due(before + timedelta(hours=23)).deletions == 0
    assert all(archive.store.stat(key) is not None for key in keys)
    purged = archive.purge_due(before + timedelta(hours=24, minutes=1))
    assert (purged.deletions, purged.blobs_removed) == (1, len(keys))
    assert all(archive.store.stat(key) is None for key in keys)
    assert archive.lifecycle.awaiting_purge() == set()
    assert archive.purge_due(before + timedelta(hours=48)).deletions == 0  # done once
    other_keys = [result.blob_key for result in other_study.results]
    assert all(archive.store.stat(key) is not None for key in other_keys)

    listed = client.get("/api/deletions", params={"study_uid": uid}).json()["deletions"]
    assert [(d["level"], d["reason"], d["instances"]) for d in listed] == [
        ("study", "wrong patient", len(keys))
    ]
    (record,) = archive.deletions(uid)
    assert record.level == "study" and record.instances == len(keys)
    assert record.reason == "wrong patient" and record.deleted_by == "admin"
    assert record.patient_id == "BN0001" and record.purged_at is not None

    # Audited: who, what, which patient, when, why; and the purge.
    events = [e for e in archive.audit.events(study_uid=uid) if e.action in ("delete", "purge")]
    assert [e.action for e in events] == ["delete", "purge"]
    deleted = events[0]
    assert (deleted.actor, deleted.outcome, deleted.patient_id) == ("admin", "success", "BN0001")
    assert "reason=wrong patient" in deleted.detail and "level=study" in deleted.detail
    assert deleted.at is not None


def test_legal_hold_refuses_delete_until_released(
    archive: Archive, client: TestClient, study: StoredStudy
) -> None:
    uid = study.study_uid
    assert client.get(f"/api/studies/{uid}/hold").status_code == 404
    response = client.put(f"/api/studies/{uid}/hold", json={"reason": "court order 17/2026"})
    assert response.status_code == 200, response.text
    assert response.json()["held_by"] == "admin"
    assert client.get(f"/api/studies/{uid}/hold").json()["reason"] == "court order 17/2026"

    series = study.series_uids[0]
    instance = study.instances(0)[0].sop_instance_uid
    for url in (
        f"/dicom-web/studies/{uid}",
        f"/dicom-web/studies/{uid}/series/{series}",
        f"/dicom-web/studies/{uid}/series/{series}/instances/{instance}",
    ):
        refused = client.delete(url, params={"reason": "cleanup"})
        assert refused.status_code == 409, refused.text
        assert "legal hold" in refused.json()["detail"]
    assert uid in _study_uids(client)
    assert len(_instance_uids(client, uid)) == 4
    refusals = [e for e in archive.audit.events(study_uid=uid) if e.action == "delete"]
    assert len(refusals) == 3 and all(e.outcome == "failure: legal hold" for e in refusals)

    assert (
        client.delete(f"/api/studies/{uid}/hold", params={"reason": "case closed"}).status_code
        == 204
    )
    assert client.get(f"/api/studies/{uid}/hold").status_code == 404
    assert (
        client.delete(f"/dicom-web/studies/{uid}", params={"reason": "cleanup"}).status_code == 204
    )
    assert uid not in _study_uids(client)
    holds = [e.detail for e in archive.audit.events(study_uid=uid) if e.action == "legal-hold"]
    assert holds == ["set; reason=court order 17/2026", "released; reason=case closed"]


def test_roles_without_delete_get_403_and_bad_requests_lose_nothing(
    archive: Archive,
    client: TestClient,
    doctor_client: TestClient,
    anonymous_client: TestClient,
    study: StoredStudy,
) -> None:
    uid = study.study_uid
    url = f"/dicom-web/studies/{uid}"
    assert doctor_client.delete(url, params={"reason": "x"}).status_code == 403
    assert anonymous_client.delete(url, params={"reason": "x"}).status_code == 401
    assert doctor_client.put(f"/api/studies/{uid}/hold", json={"reason": "x"}).status_code == 403
    assert client.delete(url).status_code == 400  # no reason
    assert client.delete(url, params={"reason": "  "}).status_code == 400
    assert client.delete("/dicom-web/studies/1.2.3.4", params={"reason": "x"}).status_code == 404
    missing_series = f"{url}/series/1.2.3.4"
    assert client.delete(missing_series, params={"reason": "x"}).status_code == 404
    assert client.put("/api/studies/1.2.3.4/hold", json={"reason": "x"}).status_code == 404
    assert len(_instance_uids(doctor_client, uid)) == 4
    assert archive.deletions() == []


def test_series_and_instance_deletes(
    archive: Archive, client: TestClient, dimse_server: DimseServer, study: StoredStudy
) -> None:
    uid = study.study_uid
    first, second = study.series_uids
    response = client.delete(
        f"/dicom-web/studies/{uid}/series/{first}",
        headers={"X-Deletion-Reason": "test series sent by mistake"},
    )
    assert response.status_code == 204, response.text
    remaining = {r.sop_instance_uid for r in study.instances(1)}
    assert _instance_uids(client, uid) == remaining
    series = client.get(f"/dicom-web/studies/{uid}/series", headers=DICOM_JSON).json()
    assert [item["0020000E"]["Value"][0] for item in series] == [second]
    assert _c_find_studies(dimse_server.port, uid) == 1  # the study itself stays

    doomed, kept = study.instances(1)
    url = f"/dicom-web/studies/{uid}/series/{second}/instances/{doomed.sop_instance_uid}"
    assert client.delete(url, params={"reason": "duplicate slice"}).status_code == 204
    assert client.delete(url, params={"reason": "again"}).status_code == 404  # already gone
    assert _instance_uids(client, uid) == {kept.sop_instance_uid}

    # Deleting the last instance leaves no empty series or study behind.
    last = f"/dicom-web/studies/{uid}/series/{second}/instances/{kept.sop_instance_uid}"
    assert client.delete(last, params={"reason": "cleanup"}).status_code == 204
    assert uid not in _study_uids(client)
    assert _c_find_studies(dimse_server.port, uid) == 0
    levels = [(d.level, d.instances) for d in reversed(archive.deletions(uid))]
    assert levels == [("series", 2), ("instance", 1), ("instance", 1)]

    purged = archive.purge_due(datetime.now(UTC) + timedelta(days=2))
    assert (purged.deletions, purged.blobs_removed) == (3, 4)
    assert all(archive.store.stat(r.blob_key) is None for r in study.results)


def test_an_object_sent_again_before_the_purge_keeps_its_blob(
    archive: Archive, client: TestClient, study: StoredStudy
) -> None:
    uid = study.study_uid
    assert client.delete(f"/dicom-web/studies/{uid}", params={"reason": "oops"}).status_code == 204
    again = study.results[0]
    resent = archive.ingest(io.BytesIO(study.data[again.sop_instance_uid]), Origin(door="import"))
    assert resent.blob_key == again.blob_key  # same content, same key
    # Sent again, the key left the purge's list (pacs.archive.lifecycle.revive_blob).
    assert again.blob_key not in archive.lifecycle.awaiting_purge()
    purged = archive.purge_due(datetime.now(UTC) + timedelta(days=2))
    assert (purged.deletions, purged.blobs_kept, purged.blobs_removed) == (1, 0, 3)
    assert archive.store.stat(again.blob_key) is not None
    response = client.get(
        f"/dicom-web/studies/{uid}/series/{again.series_uid}/instances/{again.sop_instance_uid}"
    )
    assert response.status_code == 200


def test_the_scheduler_queues_due_purges_as_jobs(archive: Archive, study: StoredStudy) -> None:
    from pacs.auth.principal import Kind, Principal, Role
    from pacs.jobs.runner import Runner

    admin = Principal(Kind.USER, "admin", Role.ADMIN)
    archive.lifecycle.purge_after = timedelta(0)  # due at once
    archive.delete(admin, study.study_uid, reason="purge through the queue")
    assert "purge-deleted" in archive.jobs.periodic.names()
    due = [t for t in archive.jobs.periodic.due(float("inf")) if t.name == "purge-deleted"]
    due[0].run()
    due[0].run()  # de-duplicated: one job per deletion
    jobs, total = archive.jobs.list(kind="purge-deletion")
    assert total == 1
    runner = Runner(archive.jobs.queue, archive.jobs.handlers, threads=1)
    assert runner.run_once()
    assert archive.jobs.get(jobs[0].id).state == "done"
    assert all(archive.store.stat(r.blob_key) is None for r in study.results)
    assert archive.deletions(study.study_uid)[0].purged_at is not None
