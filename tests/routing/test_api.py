"""``/api/routes``: rules and DICOMweb endpoints (secrets masked), the outbox, the policy."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.config import remote_ae
from tests.dicom_factory import ct_slice, to_bytes

BACKUP = remote_ae(ae_title="BACKUP", host="127.0.0.1", port=11999, services=["store"])
RULE = {"name": "CT to backup", "destination": "ae:BACKUP", "modality": "CT", "priority": 5}
ENDPOINT = {
    "name": "upper",
    "url": "https://bv-tinh.example.vn/dicom-web/",
    "auth": "bearer",
    "secret": "s3cret-token",
}


def test_rules_crud_audited(archive: Archive, client: TestClient) -> None:
    archive.remote_aes.add(BACKUP)
    created = client.post("/api/routes", json=RULE)
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]
    assert created.json()["trigger"] == "stable"
    assert client.post("/api/routes", json=RULE).status_code == 409
    changed = client.put(f"/api/routes/{rule_id}", json={**RULE, "trigger": "instance"})
    assert changed.status_code == 200, changed.text
    assert client.get(f"/api/routes/{rule_id}").json()["trigger"] == "instance"
    assert [r["name"] for r in client.get("/api/routes").json()["rules"]] == ["CT to backup"]
    assert client.put("/api/routes/999", json=RULE).status_code == 404
    assert client.delete(f"/api/routes/{rule_id}").status_code == 204
    assert client.delete(f"/api/routes/{rule_id}").status_code == 404
    actions = [event.action for event in archive.audit.events()]
    assert {"route-add", "route-change", "route-remove"} <= set(actions)


def test_bad_rules_are_422_with_the_reason(archive: Archive, client: TestClient) -> None:
    archive.remote_aes.add(BACKUP)
    for change, reason in [
        ({"destination": "ae:NOWHERE"}, "no enabled remote AE"),
        ({"destination": "web:nope"}, "no DICOMweb endpoint"),
        ({"destination": "mail:x"}, "destination"),
        ({"window_start": "7:00", "window_end": "19:00"}, "HH:MM"),
        ({"trigger": "hourly"}, "trigger"),
    ]:
        response = client.post("/api/routes", json={**RULE, **change})
        assert response.status_code == 422, (change, response.text)
        assert reason in response.text, (change, response.text)


def test_endpoint_secret_is_stored_but_never_shown(archive: Archive, client: TestClient) -> None:
    created = client.post("/api/routes/endpoints", json=ENDPOINT)
    assert created.status_code == 201, created.text
    assert created.json()["secret"] == "********"
    assert created.json()["url"] == "https://bv-tinh.example.vn/dicom-web"
    assert "s3cret" not in client.get("/api/routes/endpoints").text
    kept = client.put(
        "/api/routes/endpoints/upper", json={**ENDPOINT, "secret": "********", "description": "x"}
    )
    assert kept.status_code == 200, kept.text
    assert archive.routing.rules.endpoint("upper").secret == "s3cret-token"
    client.put("/api/routes/endpoints/upper", json={**ENDPOINT, "secret": "new"})
    assert archive.routing.rules.endpoint("upper").secret == "new"
    assert client.post("/api/routes/endpoints", json=ENDPOINT).status_code == 409
    rule = client.post("/api/routes", json={**RULE, "destination": "web:upper"})
    assert rule.status_code == 201, rule.text
    assert client.delete("/api/routes/endpoints/upper").status_code == 204
    assert client.get("/api/routes/endpoints/upper").status_code == 404
    assert "s3cret" not in str([e.detail for e in archive.audit.events()])


def test_send_queues_a_job_with_progress(archive: Archive, client: TestClient) -> None:
    archive.remote_aes.add(BACKUP)
    ds = ct_slice()
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin("import"))
    study = str(ds.StudyInstanceUID)
    queued = client.post(f"/api/studies/{study}/send", json={"destination": "ae:BACKUP"})
    assert queued.status_code == 202, queued.text
    send, job = queued.json()["send"], queued.json()["job"]
    assert send["state"] == "pending" and send["destination"] == "ae:BACKUP"
    jobs = client.get("/api/jobs", params={"kind": "route-send"}).json()["jobs"]
    assert [(j["id"], j["payload"]["destination"]) for j in jobs] == [(job, "ae:BACKUP")]
    assert client.get(f"/api/routes/sends/{send['id']}").json()["study_uid"] == study
    listed = client.get("/api/routes/sends", params={"state": "pending"}).json()
    assert [s["id"] for s in listed["sends"]] == [send["id"]]
    assert client.post(f"/api/routes/sends/{send['id']}/retry").status_code == 409
    assert client.post(f"/api/routes/sends/{send['id']}/cancel").json()["state"] == "cancelled"
    assert client.post(f"/api/routes/sends/{send['id']}/retry").status_code == 200
    assert (
        client.post("/api/studies/1.2.3/send", json={"destination": "ae:BACKUP"}).status_code == 404
    )
    assert (
        client.post(f"/api/studies/{study}/send", json={"destination": "ae:NONE"}).status_code
        == 422
    )
    audited = [e for e in archive.audit.events() if e.action == "study-send"]
    assert audited and audited[0].patient_id == "BN0001"


def test_policy_clinician_cannot_route_or_send(archive: Archive, client: TestClient) -> None:
    create_account(archive.sessions, "bs", "clinician-password-1", Role.CLINICIAN)
    client.auth = ("bs", "clinician-password-1")
    assert client.get("/api/routes").status_code == 403
    assert client.post("/api/routes", json=RULE).status_code == 403
    assert client.post("/api/studies/1.2/send", json={"destination": "ae:X"}).status_code == 403
    assert client.post("/api/remote/X/find", json={}).status_code == 403
    assert client.get("/api/routes/destinations").status_code == 403


def test_destinations_for_those_who_send_name_no_host(archive: Archive, client: TestClient) -> None:
    """The send and query pages' choices: enabled peers by service, endpoints, no address."""
    archive.remote_aes.add(BACKUP)
    archive.remote_aes.add(
        remote_ae(ae_title="QR", host="10.0.0.9", port=104, services=["find", "move"])
    )
    archive.remote_aes.add(
        remote_ae(
            ae_title="OFF", host="10.0.0.8", port=104, services=["store", "find"], enabled=False
        )
    )
    assert client.post("/api/routes/endpoints", json=ENDPOINT).status_code == 201
    create_account(archive.sessions, "bsxq", "radiologist-password-1", Role.RADIOLOGIST)
    client.auth = ("bsxq", "radiologist-password-1")
    answer = client.get("/api/routes/destinations")
    assert answer.status_code == 200, answer.text
    assert [d["destination"] for d in answer.json()["destinations"]] == ["ae:BACKUP", "web:upper"]
    assert [r["name"] for r in answer.json()["remotes"]] == ["QR"]
    assert "10.0.0.9" not in answer.text and "bv-tinh" not in answer.text
