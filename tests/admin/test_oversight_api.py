"""``/api/shares``, ``/api/audit`` (CSV, DICOM XML, chain status), ``/api/storage`` and
``/api/settings`` (issue 18 items 1 and 9), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select, update

from app.cli import main
from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.audit.filters import AuditFilter
from pacs.audit.models import AuditEvent
from pacs.auth import accounts
from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.jobs.waiting import wait_until

PASSWORD = "mat-khau-dai-1"


def _study(archive: Archive, patient_id: str = "BN0001", modality: str = "CT") -> str:
    ds = ct_slice(size=8, patient_id=patient_id)
    ds.Modality = modality
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    return str(ds.StudyInstanceUID)


@pytest.fixture
def doctor(archive: Archive) -> Iterator[TestClient]:
    """A clinician logged in with HTTP Basic, in the same archive as ``client`` (the admin)."""
    archive.settings.public_base_url = "http://pacs.example"
    accounts.create_account(archive.sessions, "bs.lan", PASSWORD, Role.CLINICIAN)
    with TestClient(create_app(archive)) as http:
        http.auth = ("bs.lan", PASSWORD)
        yield http


def test_shares_listed_with_creator_uses_and_state(
    archive: Archive, client: TestClient, doctor: TestClient
) -> None:
    study = _study(archive)
    mine = doctor.post(f"/api/studies/{study}/shares", json={"days": 7}).json()
    theirs = client.post(f"/api/studies/{study}/shares", json={"days": 1, "pin": "2468"}).json()
    with TestClient(create_app(archive), follow_redirects=False) as patient:
        for _ in range(2):
            opened = patient.get(mine["url"].removeprefix("http://pacs.example"))
            assert opened.status_code == 303
    listed = client.get("/api/shares").json()
    assert listed["total"] == 2
    by_id = {share["grant_id"]: share for share in listed["shares"]}
    assert by_id[mine["grant_id"]]["uses"] == 2 and by_id[mine["grant_id"]]["last_used_at"]
    assert by_id[mine["grant_id"]]["created_by"] == "bs.lan"
    assert by_id[theirs["grant_id"]]["uses"] == 0 and by_id[theirs["grant_id"]]["pin"]
    assert {share["state"] for share in listed["shares"]} == {"active"}
    assert all(share["study_uid"] == study for share in listed["shares"])
    # A clinician sees only the links they made, and cannot ask for others'.
    own = doctor.get("/api/shares").json()
    assert [share["grant_id"] for share in own["shares"]] == [mine["grant_id"]]
    assert doctor.get("/api/shares", params={"created_by": "admin"}).status_code == 403
    # Revoked by id: the state says so and the link stops working.
    assert client.delete(f"/api/shares/{mine['grant_id']}").status_code == 204
    state = {s["grant_id"]: s["state"] for s in client.get("/api/shares").json()["shares"]}
    assert state[mine["grant_id"]] == "revoked"
    assert client.delete("/api/shares/no-such-share").status_code == 404
    assert "share-list" in [event.action for event in archive.audit.events()]


def test_audit_search_and_export(archive: Archive, client: TestClient) -> None:
    doctor = Principal(Kind.USER, "bs.lan", Role.RADIOLOGIST, "10.0.0.5")
    archive.audit.record(doctor, "wado", patient_id="BN1", study_uid="1.2.3")
    archive.audit.record(doctor, "c-find", patient_id="BN2")
    forged = Principal(Kind.USER, '=HYPERLINK("http://x")', Role.ANONYMOUS, "10.0.0.6")
    archive.audit.record(forged, "login", "failure: bad credentials or locked")
    found = client.get("/api/audit", params={"user": "bs.lan", "patient_id": "BN1"}).json()
    assert [(e["action"], e["study_uid"]) for e in found] == [("wado", "1.2.3")]
    day = found[0]["at"][:10]
    dated = client.get("/api/audit", params={"since": day, "until": day, "action": "c-find"})
    assert [e["patient_id"] for e in dated.json()] == ["BN2"]
    assert client.get("/api/audit", params={"since": "yesterday"}).status_code == 400

    exported = client.get("/api/audit", params={"format": "csv", "limit": 50})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text.removeprefix("\ufeff"))))
    assert {"wado", "c-find", "login"} <= {row["action"] for row in rows}
    injected = next(row for row in rows if row["action"] == "login")
    assert injected["actor"].startswith("'=")  # stays text in a spreadsheet
    xml = client.get("/api/audit", params={"format": "dicom-xml", "study_uid": "1.2.3"})
    messages = ET.fromstring(xml.text).findall("AuditMessage")
    assert len(messages) == 1


def test_chain_status_says_intact_then_broken(archive: Archive, client: TestClient) -> None:
    doctor = Principal(Kind.USER, "bs.lan", Role.RADIOLOGIST, "10.0.0.5")
    for n in range(3):
        archive.audit.record(doctor, "c-find", patient_id=f"BN{n}")
    status = client.get("/api/audit/verify").json()
    assert status["intact"] and status["broken_at"] is None
    assert status["records"] >= 3 and status["newest"] >= status["records"]
    with archive.sessions.begin() as session:
        first = session.scalar(select(func.min(AuditEvent.pk)))
        session.execute(update(AuditEvent).where(AuditEvent.pk == first).values(actor="khac"))
    broken = client.get("/api/audit/verify").json()
    assert not broken["intact"] and broken["broken_at"] == first
    assert broken["reason"] == "record altered"
    outcomes = [e.outcome for e in archive.audit.events(AuditFilter(action="audit-verify"))]
    assert outcomes[0] == "success" and outcomes[-1].startswith("failure")


def test_an_auditor_reads_the_audit_and_nothing_else(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "kiemtra", PASSWORD, Role.AUDITOR)
    with TestClient(create_app(archive)) as http:
        http.auth = ("kiemtra", PASSWORD)
        assert http.get("/api/audit").status_code == 200
        assert http.get("/api/audit/verify").status_code == 200
        for path in ("/api/users", "/api/storage", "/api/settings", "/api/tokens", "/api/aes"):
            assert http.get(path).status_code == 403, path


def test_storage_usage_per_modality_and_month_and_last_check(
    archive: Archive, client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = client.get("/api/storage").json()
    assert empty["last_check"] is None and empty["by_modality_month"] == []
    _study(archive, "BN1", "CT")
    _study(archive, "BN1", "CT")
    _study(archive, "BN2", "MR")
    usage = client.get("/api/storage").json()
    (store,) = usage["stores"]
    assert store["kind"] == "filesystem" and store["instances"] == 3
    assert store["bytes"] > 0 and 0 < store["space"]["free_bytes"] <= store["space"]["total_bytes"]
    months = {(m["modality"], m["month"]): m for m in usage["by_modality_month"]}
    assert {modality for modality, _ in months} == {"CT", "MR"}
    month = next(iter(months))[1]
    assert len(month) == 7 and month[4] == "-"
    assert months[("CT", month)]["instances"] == 2
    assert sum(m["bytes"] for m in months.values()) == store["bytes"]
    assert usage["data_dir_space"]["free_bytes"] > 0

    # `pacs check` records its result; the storage page shows the newest.
    monkeypatch.setenv("PACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", settings.database_url)
    archive.audit.flush()
    assert main(["check", "--quick"]) == 0
    check = client.get("/api/storage").json()["last_check"]
    assert check["consistent"] and check["outcome"] == "success"
    assert check["summary"]["counts"]["index_rows"] == 3 and check["summary"]["counts"]["quick"]
    assert check["by"].startswith("os:")
    archive.store.delete(archive.locate(study_uid=_study(archive, "BN3"))[0].blob_key)
    assert main(["check", "--quick"]) == 1
    check = client.get("/api/storage").json()["last_check"]
    assert not check["consistent"] and check["summary"]["counts"]["missing_blobs"] == 1


def test_settings_are_the_effective_ones_with_secrets_masked(archive: Archive) -> None:
    archive.settings.oidc_client_secret = SecretStr("bi-mat-cua-idp")
    real_url = archive.settings.database_url  # the engine is already open: only shown
    archive.settings.database_url = "postgresql+psycopg://pacs:mat-khau-csdl@db:5432/pacs"
    with TestClient(create_app(archive)) as http:
        accounts.create_account(archive.sessions, "admin", PASSWORD, Role.ADMIN)
        http.auth = ("admin", PASSWORD)
        shown = http.get("/api/settings")
    assert shown.status_code == 200
    values = shown.json()["settings"]
    assert values == json.loads(json.dumps(archive.settings.effective()))
    assert values["ae_title"] == archive.settings.ae_title
    assert values["oidc_client_secret"] == "********"
    assert "bi-mat-cua-idp" not in shown.text
    assert values["database_url"] == "postgresql+psycopg://pacs:***@db:5432/pacs"
    assert "mat-khau-csdl" not in shown.text
    archive.settings.database_url = real_url


def test_an_integrity_check_asked_for_from_the_page_runs_as_a_job(
    archive: Archive, client: TestClient
) -> None:
    _study(archive, "BN1", "CT")
    queued = client.post("/api/storage/check", json={})
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]
    assert client.get("/api/storage").json()["last_check"] is None  # not run yet
    running = archive.jobs.start(scheduler=False)  # the runners of `pacs serve`
    try:
        wait_until(lambda: archive.jobs.get(job_id).state == "done", what="the check job")
    finally:
        running.stop(10)
    check = client.get("/api/storage").json()["last_check"]
    assert check["consistent"] and check["by"] == "admin"
    assert check["summary"]["counts"]["index_rows"] == 1
    assert check["summary"]["counts"]["repair"] is False
    requested = archive.audit.events(AuditFilter(action="check-request"))
    assert len(requested) == 1 and requested[0].actor == "admin"
    assert client.post("/api/storage/check", json={"quick": "maybe"}).status_code == 422
