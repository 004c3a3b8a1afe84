"""Orders and patient updates in the index (SQLite and PostgreSQL), applied to stored studies,
and stored studies matched to orders; messages arrive over a real MLLP socket."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hl7.client import MLLPClient

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from tests.dicom_factory import ct_slice, to_bytes
from tests.hl7.messages import adt, listening, msh, orm, pid


def _send(archive: Archive, *messages: str) -> list[str]:
    codes = []
    with listening(archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        for message in messages:
            reply = client.send_message(message).decode()
            codes.append(reply.split("\rMSA|", 1)[1].split("|", 1)[0])
    return codes


def _store(archive: Archive, **kwargs: str) -> str:
    ds = ct_slice(**{k: v for k, v in kwargs.items() if k in ("patient_name", "patient_id")})
    if "accession" in kwargs:
        ds.AccessionNumber = kwargs["accession"]
    if "study_date" in kwargs:
        ds.StudyDate = kwargs["study_date"]
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    return str(ds.StudyInstanceUID)


def test_orders_filtered_by_date_modality_status_patient(archive: Archive) -> None:
    codes = _send(
        archive,
        orm("A1", accession="ACC1", modality="CT", when="202612041000"),
        orm("A2", accession="ACC2", modality="MR", when="202612051000"),
        orm(
            "A3",
            accession="ACC3",
            modality="CT",
            when="202612061000",
            patient_id="BN777",
            name="Phạm^Minh Đức",
        ),
        orm("A4", "DC", accession="ACC2", modality="MR"),
    )
    assert codes == ["AA"] * 4
    wf = archive.workflow
    assert [o.accession_number for o in wf.orders()] == ["ACC3", "ACC2", "ACC1"]
    assert [o.accession_number for o in wf.orders(modality="CT")] == ["ACC3", "ACC1"]
    assert [o.accession_number for o in wf.orders(scheduled="20261204-20261205")] == [
        "ACC2",
        "ACC1",
    ]
    assert [o.accession_number for o in wf.orders(status="discontinued")] == ["ACC2"]
    assert [o.accession_number for o in wf.orders(patient="pham minh duc")] == ["ACC3"]
    assert [o.accession_number for o in wf.orders(patient="079180001234")] == [
        "ACC3",
        "ACC2",
        "ACC1",
    ]


def test_a08_corrects_stored_study_visible_in_qido(archive: Archive, client: TestClient) -> None:
    study_uid = _store(archive, patient_id="BN123", patient_name="Nguyen^Thi Bich")
    assert _send(archive, adt("A08", "U1", name="Nguyễn^Thị Bích", sex="F")) == ["AA"]
    found = client.get("/dicom-web/studies", params={"PatientID": "BN123"})
    assert found.status_code == 200
    (study,) = found.json()
    assert study["0020000D"]["Value"] == [study_uid]
    assert study["00100010"]["Value"] == [{"Alphabetic": "Nguyễn^Thị Bích"}]
    versions = client.get(f"/api/studies/{study_uid}/versions").json()["versions"]
    assert versions[-1]["changes"]["PatientName"]["new"] == "Nguyễn^Thị Bích"
    assert versions[-1]["corrected_by"] == "hl7:HIS"
    # Sent again: the same answer, no second version.
    assert _send(archive, adt("A08", "U1", name="Nguyễn^Thị Bích", sex="F")) == ["AA"]
    assert len(client.get(f"/api/studies/{study_uid}/versions").json()["versions"]) == 1


def test_a40_merge_moves_studies_and_orders_old_id_findable(
    archive: Archive, client: TestClient
) -> None:
    study_uid = _store(archive, patient_id="OLD1", patient_name="Nguyễn^Thị Bích")
    merge = "\r".join([msh("ADT^A40^ADT_A39", "M2"), pid(patient_id="BN123"), "MRG|OLD1^^^BVDK^MR"])
    codes = _send(archive, orm("M1", patient_id="OLD1", accession="ACCM"), merge)
    assert codes == ["AA", "AA"]
    moved = client.get("/dicom-web/studies", params={"PatientID": "BN123"}).json()
    assert [s["0020000D"]["Value"][0] for s in moved] == [study_uid]
    # The prior ID stays findable (an alias of the survivor), answered as the survivor.
    by_old_qido = client.get("/dicom-web/studies", params={"PatientID": "OLD1"}).json()
    assert [s["0020000D"]["Value"][0] for s in by_old_qido] == [study_uid]
    assert by_old_qido[0]["00100020"]["Value"] == ["BN123"]
    assert [m.kind for m in archive.patient_moves_of("OLD1")] == ["merge"]
    by_old = client.get("/api/orders", params={"patient": "OLD1"}).json()["orders"]
    assert [o["accession_number"] for o in by_old] == ["ACCM"]
    assert by_old[0]["patient"]["patient_id"] == "BN123"


def test_stored_study_matched_to_its_order_or_listed_unmatched(
    archive: Archive, client: TestClient
) -> None:
    assert _send(
        archive,
        orm("X1", accession="ACCX", modality="CT", when="202611201000"),
        orm("X2", accession="ACCY", modality="CT", when="202611201100", patient_id="BN555"),
    ) == ["AA", "AA"]
    by_accession = _store(archive, patient_id="BN123", accession="ACCX")
    by_patient = _store(
        archive,
        patient_id="BN555",
        study_date="20261121",
        patient_name="NGUYEN THI BICH",
        accession="",
    )
    orphan = _store(archive, patient_id="BN999", accession="NOORDER")
    # Matching is a study-stable job, not ingest work: the stable scan queues one per study.
    archive.events.check_stable(now=datetime.now(UTC) + timedelta(hours=1))
    jobs, _ = archive.jobs.list(kind="workflow-match")
    assert {job.payload["study_uid"] for job in jobs} == {by_accession, by_patient, orphan}
    for job in jobs:
        archive.workflow.match_study(job.payload["study_uid"])
    found = archive.workflow.order_of_study(by_accession)
    assert found is not None and found.accession_number == "ACCX"
    assert found.studies == [by_accession]
    found = archive.workflow.order_of_study(by_patient)
    assert found is not None and found.accession_number == "ACCY"
    # The HIS's demographics and the order's accession number win, as audited corrections.
    shown = client.get("/dicom-web/studies", params={"StudyInstanceUID": by_patient}).json()
    assert shown[0]["00100010"]["Value"] == [{"Alphabetic": "Nguyễn^Thị Bích"}]
    assert shown[0]["00080050"]["Value"] == ["ACCY"]
    versions = client.get(f"/api/studies/{by_patient}/versions").json()["versions"]
    assert versions[-1]["reason"] == "matched to HIS order ACCY"
    assert archive.workflow.order_of_study(orphan) is None
    shown_order = client.get(f"/api/studies/{by_accession}/order").json()["order"]
    assert shown_order["accession_number"] == "ACCX"
    assert client.get(f"/api/studies/{orphan}/order").json()["order"] is None
    unmatched = client.get("/api/orders", params={"unmatched": "true"}).json()["studies"]
    assert [s["study_uid"] for s in unmatched] == [orphan]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # HTTP shape only
def test_order_and_message_apis(
    archive: Archive, client: TestClient, anonymous_client: TestClient
) -> None:
    assert _send(archive, orm("P1"), "MSH|^~\\&|HIS|BVDK|PACS|BVDK|x||ADT^A08|P2|P|2.5") == [
        "AA",
        "AE",
    ]
    orders = client.get("/api/orders", params={"modality": "CT", "date": "20261204"})
    assert orders.status_code == 200
    (order,) = orders.json()["orders"]
    assert order["patient"]["name"] == "Nguyễn^Thị Bích"
    assert client.get("/api/orders", params={"date": "tomorrow"}).status_code == 400
    assert client.get("/api/orders", params={"status": "lost"}).status_code == 400
    page = client.get("/api/hl7/messages", params={"limit": 1}).json()
    assert page["total"] == 2
    (newest,) = page["messages"]
    assert (newest["control_id"], newest["ack_code"]) == ("P2", "AE")
    assert "PID" in newest["error"]
    older = client.get("/api/hl7/messages", params={"limit": 1, "offset": 1}).json()
    assert older["messages"][0]["summary"]["accession_number"] == "ACC1001"
    assert "Nguyễn^Thị Bích" in older["messages"][0]["raw"]
    assert anonymous_client.get("/api/hl7/messages").status_code == 401
    assert anonymous_client.get("/api/orders").status_code == 401
