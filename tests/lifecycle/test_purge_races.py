"""The purge against what can happen while it runs: the same object sent again, a second
purger, a legal hold. SQLite and PostgreSQL, the filesystem store.

Each case puts the other actor at the moment that used to lose or misreport data,
through a hook on the store or the purge, not through timing.
"""

from __future__ import annotations

import hashlib
import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.principal import Kind, Principal, Role
from tests.lifecycle.conftest import StoredStudy

ADMIN = Principal(Kind.USER, "admin", Role.ADMIN)
LATER = timedelta(days=2)


def _sha(archive: Archive, key: str) -> str | None:
    if archive.store.stat(key) is None:
        return None
    with archive.store.open(key) as blob:
        return hashlib.sha256(blob.read()).hexdigest()


def test_an_object_sent_again_while_the_purge_runs_keeps_its_bytes(
    archive: Archive, study: StoredStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge runs between the ingest's write of the bytes and its index commit.

    It used to find no live row yet for the key (same object, same key), delete the
    bytes the ingest had just written, and the ingest then committed and acknowledged
    an instance without a blob. The ingest now takes the key off the purge's list
    before it writes."""
    archive.delete(ADMIN, study.study_uid, reason="wrong patient")
    again = study.results[0]
    reports = []
    put_file, put = archive.store.put_file, archive.store.put

    def purge_after(result: Any) -> Any:
        reports.append(archive.purge_due(datetime.now(UTC) + LATER))
        return result

    monkeypatch.setattr(archive.store, "put_file", lambda *a, **k: purge_after(put_file(*a, **k)))
    monkeypatch.setattr(archive.store, "put", lambda *a, **k: purge_after(put(*a, **k)))
    sent = study.data[again.sop_instance_uid]
    resent = archive.ingest(io.BytesIO(sent), Origin(door="import"))
    monkeypatch.undo()

    assert resent.blob_key == again.blob_key and len(reports) == 1
    written = _sha(archive, again.blob_key) or "missing"
    assert written == hashlib.sha256(sent).hexdigest(), "the acknowledged instance lost its bytes"
    assert reports[0].blobs_removed == len(study.results) - 1
    assert reports[0].deletions == 1  # the rest purged; the deletion record says so
    others = [r.blob_key for r in study.results[1:]]
    assert all(archive.store.stat(key) is None for key in others)
    assert archive.lifecycle.awaiting_purge() == set()
    assert archive.purge_due(datetime.now(UTC) + LATER).blobs_removed == 0
    assert _sha(archive, again.blob_key) == hashlib.sha256(sent).hexdigest()


@pytest.mark.timeout(120)
def test_two_purgers_of_one_deletion_remove_each_blob_once_and_audit_once(
    archive: Archive, study: StoredStudy
) -> None:
    """Two nodes' purge jobs for the same deletion at the same moment: each blob is
    claimed by one of them, the deletion is counted and audited once."""
    view = archive.delete(ADMIN, study.study_uid, reason="duplicate study")
    start = threading.Barrier(2)
    reports = []

    def purger() -> None:
        start.wait()
        reports.append(archive.lifecycle.purge(view.id))

    threads = [threading.Thread(target=purger) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(reports) == 2
    assert sum(r.blobs_removed for r in reports) == len(study.results)
    assert sum(r.deletions for r in reports) == 1
    assert all(archive.store.stat(r.blob_key) is None for r in study.results)
    purges = [e for e in archive.audit.events(study_uid=study.study_uid) if e.action == "purge"]
    assert len(purges) == 1
    assert archive.deletions(study.study_uid)[0].purged_at is not None


def test_a_legal_hold_set_during_a_purge_keeps_the_blobs_not_yet_removed(
    archive: Archive, study: StoredStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A series is deleted; while its purge runs (after its first blob) an administrator
    puts the study under a legal hold. The purge used to look at holds once, at its
    start, and removed the rest anyway; each blob is now removed in a transaction that
    looks at the hold (and that the hold waits for)."""
    series = study.instances(0)
    assert len(series) == 2
    view = archive.delete(ADMIN, study.study_uid, study.series_uids[0], reason="test run")
    purge_blob = archive.lifecycle._purge_blob
    calls = []

    def hold_after_the_first(*args: Any) -> Any:
        if calls:
            archive.set_legal_hold(ADMIN, study.study_uid, "court order")
        calls.append(args)
        return purge_blob(*args)

    monkeypatch.setattr(archive.lifecycle, "_purge_blob", hold_after_the_first)
    report = archive.purge_due(datetime.now(UTC) + LATER)
    monkeypatch.undo()

    assert (report.blobs_removed, report.deletions) == (1, 0)
    kept = [r.blob_key for r in series if archive.store.stat(r.blob_key) is not None]
    assert len(kept) == 1 and archive.lifecycle.awaiting_purge() == set(kept)
    assert archive.deletions(study.study_uid)[0].purged_at is None
    assert archive.purge_due(datetime.now(UTC) + LATER).blobs_removed == 0  # still held
    # Released: the purge finishes what it began.
    archive.release_legal_hold(ADMIN, study.study_uid, "case closed")
    assert archive.purge_due(datetime.now(UTC) + LATER).deletions == 1
    assert all(archive.store.stat(r.blob_key) is None for r in series)
    assert archive.deletions(study.study_uid)[0].id == view.id
