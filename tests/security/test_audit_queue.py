"""Audit off the hot path: WADO/QIDO windows, a bounded queue, nothing lost on stop or outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from pacs.archive import Archive
from pacs.audit import AuditTrail
from pacs.audit.models import AuditEvent
from pacs.audit.writer import AuditWriter, PendingRecord
from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice
from tests.wado.helpers import ingest_ds

DOCTOR = Principal(Kind.USER, "bs.lan", Role.RADIOLOGIST, "10.0.0.5")
OCTET = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}


def _poll(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _rows(archive: Archive) -> int:
    with archive.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def _rename_trail(archive: Archive, old: str, new: str) -> None:
    """Make the trail unwritable (or writable again) the way an outage does: statements fail."""
    with archive.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_a_series_read_is_one_record_per_principal_and_study(
    archive: Archive, client: TestClient
) -> None:
    slices = [ct_slice("1.2.826.0.1.3680043.8.498.4242", index=i, size=16) for i in range(5)]
    for ds in slices:
        ingest_ds(archive, ds)
    study = slices[0].StudyInstanceUID
    for _ in range(12):  # a viewer scrolling through the series: 60 frame requests
        for ds in slices:
            url = (
                f"/dicom-web/studies/{study}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}/frames/1"
            )
            assert client.get(url, headers=OCTET).status_code == 200
    records = [e for e in archive.audit.events(study_uid=study) if e.action == "wado"]
    assert len(records) == 1
    assert records[0].patient_id == "BN0001" and records[0].actor == "admin"
    assert records[0].detail.startswith("60 requests until ")
    assert archive.audit.verify() is None


def test_a_normal_stop_writes_open_windows(settings: Settings) -> None:
    settings.audit_window_seconds = 300  # the window would stay open for five minutes
    archive = Archive.open(settings)
    archive.audit.record(DOCTOR, "wado", patient_id="BN1", study_uid="1.2.3", detail="frame 1")
    archive.audit.record(DOCTOR, "wado", patient_id="BN1", study_uid="1.2.3", detail="frame 2")
    archive.close()
    reopened = Archive.open(settings)
    try:
        [record] = reopened.audit.events(patient_id="BN1")
        assert record.detail.startswith("2 requests") and "frame 2" in record.detail
    finally:
        reopened.close()


def test_an_unwritable_trail_keeps_records_and_says_so(archive: Archive) -> None:
    _rename_trail(archive, "audit_event", "audit_event_away")
    try:
        for n in range(5):
            archive.audit.record(DOCTOR, "login", "failure: bad credentials", detail=str(n))
        _poll(lambda: "unwritable" in archive.health()["audit"])
        assert "5 records waiting" in archive.health()["audit"]
    finally:
        _rename_trail(archive, "audit_event_away", "audit_event")
    _poll(lambda: archive.health()["audit"] == "ok")
    assert [e.detail for e in archive.audit.events()] == ["0", "1", "2", "3", "4"]
    assert archive.audit.verify() is None


def test_a_full_queue_spills_to_disk_and_nothing_is_lost(archive: Archive, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    trail = AuditTrail(
        archive.sessions, spill_path=spill, queue_size=100, block_seconds=0.02, close_seconds=0.5
    )
    _rename_trail(archive, "audit_event", "audit_event_away")
    try:
        for n in range(260):  # 100 held by the writer, 100 queued, the rest spilled
            trail.record(DOCTOR, "c-find", detail=str(n))
        assert "records in the spill file" in trail.status()
        trail.close()  # the database still refuses: what is pending goes to the spill file
        assert len(spill.read_text().splitlines()) == 260
        assert spill.stat().st_mode & 0o777 == 0o600
    finally:
        _rename_trail(archive, "audit_event_away", "audit_event")
    assert _rows(archive) == 0
    replayer = AuditTrail(archive.sessions, spill_path=spill)  # the next start replays the file
    try:
        _poll(lambda: _rows(archive) == 260)
        assert sorted(int(e.detail) for e in replayer.events()) == list(range(260))
        assert replayer.verify() is None
        _poll(lambda: spill.read_text() == "")
        assert replayer.status() == "ok"
    finally:
        replayer.close()


def _access(detail: str) -> PendingRecord:
    return PendingRecord(
        at=datetime.now(UTC),
        actor_kind="user",
        actor="bs.lan",
        role="radiologist",
        address="10.0.0.5",
        action="wado",
        outcome="success",
        patient_id="BN1",
        study_uid="1.2.3",
        details=[detail],
    )


def test_repeated_accesses_merge_before_the_queue_and_none_is_lost_across_a_write() -> None:
    """A repeated access merges into the open record without queueing (no writer wake-up
    per request); once the writer seals and writes it, later accesses start a new record,
    and the counts of both add up to every access made, even with concurrent requests."""
    written: list[PendingRecord] = []
    writer = AuditWriter(written.extend, spill_path=None, window=300)
    queued: list[object] = []
    put = writer._queue.put

    def counting_put(item: object, block: bool = True, timeout: float | None = None) -> None:
        queued.append(item)
        put(item, block, timeout)

    writer._queue.put = counting_put  # type: ignore[method-assign]
    try:
        for n in range(50):
            writer.submit(_access(f"frame {n % 3}"))
        assert len(queued) == 1  # one record queued, not 50
        assert writer.flush()
        assert [r.count for r in written] == [50]

        def scroll() -> None:
            for n in range(200):
                writer.submit(_access(f"frame {n}"))

        threads = [threading.Thread(target=scroll) for _ in range(4)]
        for thread in threads:
            thread.start()
        flushed = [writer.flush() for _ in range(5)]  # writes (and seals) while they merge
        for thread in threads:
            thread.join()
        assert all(flushed) and writer.flush()
        assert sum(r.count for r in written) == 50 + 4 * 200
    finally:
        writer.close()
