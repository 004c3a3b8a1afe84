"""The change feed and study-stable events, on SQLite and PostgreSQL, with the real scheduler."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import text

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.index.changes import record_changes
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.jobs.waiting import wait_until

QUIET_S = 1.5  # above the writer's 1 s study-touch interval, as the 60 s default is


@pytest.fixture
def quick_archive(tmp_path: Path, database_url: str) -> Iterator[Archive]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        stable_study_seconds=QUIET_S,
        job_poll_seconds=0.05,
    )
    archive = Archive.open(settings)
    yield archive
    archive.close()


def _store(archive: Archive, study: str, series: str, index: int = 0) -> None:
    ds = ct_slice(study, series, index=index, size=8)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin("import"))


def test_feed_has_study_and_series_rows_not_instance_rows(quick_archive: Archive) -> None:
    archive = quick_archive
    study, series_a, series_b = generate_uid(), generate_uid(), generate_uid()
    for index in range(3):
        _store(archive, study, series_a, index)
    _store(archive, study, series_b)
    changes = archive.changes()
    assert [(c.kind, c.series_uid) for c in changes] == [
        ("new-study", ""),
        ("new-series", series_a),
        ("new-series", series_b),
    ]
    assert {c.study_uid for c in changes} == {study}
    assert [c.seq for c in archive.changes(since=changes[0].seq, limit=1)] == [changes[1].seq]
    assert archive.changes(since=changes[-1].seq) == []
    later = datetime.now(UTC) + timedelta(days=archive.settings.history_days, hours=1)
    assert archive.prune_history(now=later)[1] == 3 and archive.changes() == []


def test_study_stable_fires_once_after_quiet_time_and_again_after_a_late_instance(
    quick_archive: Archive,
) -> None:
    archive = quick_archive
    handled: list[tuple[str, datetime]] = []
    archive.jobs.handle("on-stable", lambda p: handled.append((p["study_uid"], datetime.now(UTC))))
    archive.events.on_study_stable("on-stable")
    instances: list[str] = []
    archive.events.on_instance(lambda result: instances.append(result.sop_instance_uid))
    running = archive.jobs.start()
    try:
        study_a, study_b, series_a = generate_uid(), generate_uid(), generate_uid()
        for index in range(3):
            _store(archive, study_a, series_a, index)
        _store(archive, study_b, generate_uid())
        last_arrival = datetime.now(UTC)
        assert len(instances) == 4  # the in-process instance event

        wait_until(lambda: len(handled) == 2, what="both studies stable")
        assert sorted(uid for uid, _ in handled) == sorted([study_a, study_b])
        for _, at in handled:
            assert (at - last_arrival).total_seconds() >= QUIET_S - 1.0  # touch granularity
        assert archive.events.check_stable() == 0  # already fired for these arrivals

        _store(archive, study_a, series_a, 3)  # a late instance into the known series
        kinds = [c.kind for c in archive.changes() if c.study_uid == study_a]
        assert kinds.count("new-series") == 1  # the late instance wrote no feed row
        wait_until(lambda: len(handled) == 3, what="study A stable again")
        assert handled[2][0] == study_a
        assert archive.events.check_stable() == 0
    finally:
        running.stop()
    stable = [c.study_uid for c in archive.changes() if c.kind == "stable-study"]
    assert sorted(stable) == sorted([study_a, study_b, study_a])
    jobs, total = archive.jobs.list(kind="on-stable")
    assert total == 3 and all(job.state == "done" for job in jobs)


def test_studies_held_before_the_upgrade_do_not_fire(tmp_path: Path, database_url: str) -> None:
    """The migration counts existing studies as stable: no flood of events after an upgrade."""
    from sqlalchemy import text

    from pacs.index.database import make_engine
    from pacs.index.migrate import upgrade

    engine = make_engine(database_url)
    upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO patient (pk, patient_id, issuer, name, name_folded,"
                " birth_date, sex) VALUES (1, 'P', '', '', '', '', '')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO study (study_uid, patient_pk, study_date, study_time,"
                " accession_number, study_id, study_description, referring_physician_name,"
                " referring_physician_folded, institution_name, created_at, updated_at)"
                " VALUES ('1.2.3', 1, '', '', '', '', '', '', '', '', :t, :t)"
            ),
            {"t": datetime(2020, 1, 1, tzinfo=UTC)},
        )
    engine.dispose()
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    archive = Archive.open(settings)
    try:
        assert archive.events.check_stable() == 0
        assert archive.changes() == []
    finally:
        archive.close()


def test_a_reader_following_the_feed_misses_no_late_committing_change(
    quick_archive: Archive,
) -> None:
    """A transaction takes a change number and commits late (here held open by the test),
    while an ingest creates a study and series. On PostgreSQL the ingest's higher numbers
    used to become visible first: a reader paging by ``seq > last seen`` moved past the
    late one and never saw it. Numbers are now committed in order, on both databases."""
    archive = quick_archive
    seen: list[str] = []
    cursor = 0

    def follow() -> None:
        nonlocal cursor
        for change in archive.changes(since=cursor, limit=1000):
            seen.append(change.kind)
            cursor = change.seq

    follow()
    late = archive.engine.connect()
    transaction = late.begin()
    record_changes(
        late,
        [{"kind": "late", "study_uid": "1.2.3", "series_uid": "", "at": datetime.now(UTC)}],
    )
    sqlite = archive.engine.dialect.name == "sqlite"
    ingest = threading.Thread(target=_store, args=(archive, generate_uid(), generate_uid()))
    if not sqlite:  # SQLite would wait for the held write lock: nothing to race there
        ingest.start()
        wait_until(
            lambda: not ingest.is_alive() or _waits_for_an_advisory_lock(archive),
            what="the ingest committed or waits for the feed's order",
        )
        follow()  # a reader polling while the late transaction is open
    transaction.commit()
    late.close()
    if sqlite:
        ingest.start()
    ingest.join(30)
    follow()
    assert seen[-3:] == ["late", "new-study", "new-series"], seen


def _waits_for_an_advisory_lock(archive: Archive) -> bool:
    with archive.engine.connect() as connection:
        waiting = connection.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).scalar_one()
    return bool(waiting)
