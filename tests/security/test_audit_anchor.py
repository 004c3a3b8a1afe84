"""The audit trail answers "who saw this patient" and proves nothing was removed or rewritten.

The hash chain alone accepts a shorter chain (tail deleted, table emptied) and a
chain whose hashes were all recomputed after an edit; the signed checkpoint in
the data folder catches each.
"""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from app.cli import main
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.audit.models import AuditEvent
from pacs.audit.trail import GENESIS, _digest, event_fields
from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes

DOCTOR = Principal(Kind.USER, "bs.lan", Role.RADIOLOGIST, "10.0.0.5")


def _fill(archive: Archive, n: int = 4) -> None:
    for i in range(n):
        archive.audit.record(DOCTOR, "c-find", patient_id=f"BN{i}", detail=str(i))
    assert archive.audit.flush()
    assert archive.audit.verify() is None


def test_searches_record_the_patients_they_returned(archive: Archive, client: TestClient) -> None:
    for patient in ("BN-AN", "BN-BINH"):
        ds = ct_slice(size=8)
        ds.PatientID = patient
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    assert client.get("/dicom-web/studies?StudyDate=19000101-").status_code == 200
    for patient in ("BN-AN", "BN-BINH"):
        report = [e for e in archive.audit.events(patient_id=patient) if e.action == "qido"]
        assert len(report) == 1, patient
        assert "BN-AN, BN-BINH" in report[0].detail  # covered by the record's hash
    assert archive.audit.verify() is None


def test_deleted_tail_records_are_detected(archive: Archive) -> None:
    _fill(archive)
    with archive.sessions.begin() as session:
        last = session.scalar(select(func.max(AuditEvent.pk)))
        session.execute(delete(AuditEvent).where(AuditEvent.pk >= (last or 0) - 1))
    broken = archive.audit.verify()
    assert broken is not None and "records deleted" in broken.reason
    # The next append notices too, keeps the checkpoint as evidence and /health says so.
    archive.audit.record(DOCTOR, "login")
    assert archive.audit.flush()
    assert archive.health()["audit"].startswith("TAMPERED")
    assert archive.audit.verify() is not None


def test_an_emptied_trail_is_detected(archive: Archive) -> None:
    _fill(archive)
    with archive.sessions.begin() as session:
        session.execute(delete(AuditEvent))
    broken = archive.audit.verify()
    assert broken is not None and "emptied" in broken.reason


def test_a_rewritten_chain_is_detected(archive: Archive) -> None:
    _fill(archive)
    with archive.sessions.begin() as session:  # edit one record, then recompute every hash
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.pk)))
        events[1].actor = "someone-else"
        prev = GENESIS
        for event in events:
            digest = _digest(prev, event_fields(event))
            session.execute(
                update(AuditEvent)
                .where(AuditEvent.pk == event.pk)
                .values(actor=event.actor, prev_hash=prev, hash=digest)
            )
            prev = digest
    broken = archive.audit.verify()
    assert broken is not None and "rewritten" in broken.reason


def test_a_forged_checkpoint_is_detected(archive: Archive) -> None:
    _fill(archive)
    path = archive.settings.data_dir / "audit-checkpoint.json"
    assert path.stat().st_mode & 0o777 == 0o600
    body = json.loads(path.read_text())
    body["pk"] = 1  # as if the trail had only its first record
    path.write_text(json.dumps(body))
    broken = archive.audit.verify()
    assert broken is not None and "signature" in broken.reason


def test_cli_verify_fails_on_a_deleted_tail(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PACS_DATABASE_URL", settings.database_url)
    archive = Archive.open(settings)
    try:
        _fill(archive)
    finally:
        archive.close()
    assert main(["audit", "verify"]) == 0
    archive = Archive.open(settings)
    try:
        with archive.sessions.begin() as session:
            last = session.scalar(select(func.max(AuditEvent.pk)))
            session.execute(delete(AuditEvent).where(AuditEvent.pk == last))
    finally:
        archive.close()
    assert main(["audit", "verify"]) == 1
    assert "records deleted" in capsys.readouterr().out
