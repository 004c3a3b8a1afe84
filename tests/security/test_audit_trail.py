"""The audit trail is append-only in effect: any edit or deletion breaks the hash chain."""

from __future__ import annotations

import multiprocessing
import threading

from sqlalchemy import delete, func, select, update

from pacs.archive import Archive
from pacs.audit.models import AuditEvent
from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings

DOCTOR = Principal(Kind.USER, "bs.lan", Role.RADIOLOGIST, "10.0.0.5")
MODALITY = Principal(Kind.AE, "CT01", Role.MODALITY, "10.0.0.9:4000")


def _fill(archive: Archive) -> None:
    archive.audit.record(DOCTOR, "qido", patient_id="BN1", study_uid="1.2.3")
    archive.audit.record(MODALITY, "c-store", patient_id="BN1", study_uid="1.2.3")
    archive.audit.record(DOCTOR, "wado", "failure: not found", patient_id="BN2", study_uid="1.2.4")
    assert archive.audit.flush()  # queued records are in the database once flushed


def test_intact_chain_verifies(archive: Archive) -> None:
    _fill(archive)
    assert archive.audit.verify() is None
    # Records are numbered in the order they are written: a WADO/QIDO window is written
    # when it closes, so the order of accesses is the order of ``at``.
    for_patient = sorted(archive.audit.events(patient_id="BN1"), key=lambda e: e.at)
    assert [(e.actor, e.action) for e in for_patient] == [("bs.lan", "qido"), ("CT01", "c-store")]


def test_edit_is_detected(archive: Archive) -> None:
    _fill(archive)
    with archive.sessions.begin() as session:
        second = session.scalars(select(AuditEvent).order_by(AuditEvent.pk)).all()[1]
        session.execute(
            update(AuditEvent).where(AuditEvent.pk == second.pk).values(actor="someone-else")
        )
        pk = second.pk
    broken = archive.audit.verify()
    assert broken is not None and broken.pk == pk and "altered" in broken.reason


def test_deletion_is_detected(archive: Archive) -> None:
    _fill(archive)
    with archive.sessions.begin() as session:
        first = session.scalar(select(func.min(AuditEvent.pk)))
        session.execute(delete(AuditEvent).where(AuditEvent.pk == first))
    broken = archive.audit.verify()
    assert broken is not None and "missing" in broken.reason


def test_concurrent_appends_keep_one_chain(archive: Archive) -> None:
    threads = [
        threading.Thread(
            target=lambda n=n: [
                archive.audit.record(DOCTOR, "c-find", detail=f"{n}-{i}") for i in range(10)
            ]
        )
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(archive.audit.events()) == 40
    assert archive.audit.verify() is None


def _append_from_process(settings: Settings, label: str, count: int) -> None:
    archive = Archive.open(settings, migrate=False)
    try:
        for i in range(count):
            archive.audit.record(DOCTOR, "c-find", detail=f"{label}-{i}")
    finally:
        archive.close()


def test_appends_from_several_processes_keep_one_chain(settings: Settings) -> None:
    """DIMSE worker processes and `pacs import` append beside `pacs serve`."""
    Archive.open(settings).close()  # migrate once, as `pacs serve` does
    # Fresh interpreters (not forks of this threaded one), made by a fork server that
    # imports the archive once for the session: spawn imported it in each process
    # (about 10 s apiece on a busy 2-core runner).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pacs.archive", __name__])
    processes = [
        context.Process(target=_append_from_process, args=(settings, f"p{n}", 40)) for n in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0, "an append failed (see the process's output)"
    archive = Archive.open(settings, migrate=False)
    try:
        assert len(archive.audit.events(limit=1000)) == 120
        assert archive.audit.verify() is None
    finally:
        archive.close()
