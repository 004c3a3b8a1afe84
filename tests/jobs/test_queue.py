"""The job queue on SQLite and PostgreSQL: enqueue, claim, back-off, dead letter, retry, cancel."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from pacs.archive import Archive
from pacs.index.jobs_models import Job
from pacs.jobs import JobNotFound, JobState, JobStateError
from pacs.jobs.queue import backoff_delay
from pacs.jobs.runner import Runner
from tests.jobs.waiting import wait_until


def test_enqueue_claim_complete(archive: Archive) -> None:
    queue = archive.jobs.queue
    job_id = archive.jobs.enqueue("forward", {"study_uid": "1.2.3"})
    assert job_id is not None
    claimed = queue.claim("w1", ["forward"], lease_s=30)
    assert claimed is not None and claimed.id == job_id
    assert claimed.payload == {"study_uid": "1.2.3"}
    assert claimed.state == JobState.RUNNING and claimed.attempts == 1 and claimed.worker == "w1"
    assert claimed.lease_expires is not None and claimed.lease_expires > datetime.now(UTC)
    assert queue.claim("w2", ["forward"], lease_s=30) is None  # one job, one holder
    assert queue.complete(job_id, "w1")
    assert archive.jobs.get(job_id).state == JobState.DONE
    assert queue.claim("w2", ["forward"], lease_s=30) is None


def test_claim_only_registered_kinds_and_due_jobs(archive: Archive) -> None:
    queue = archive.jobs.queue
    later = archive.jobs.enqueue("forward", delay_s=3600)
    other = archive.jobs.enqueue("thumbnail")
    assert queue.claim("w", ["forward"], lease_s=30) is None  # not due yet
    claimed = queue.claim("w", ["forward", "thumbnail"], lease_s=30)
    assert claimed is not None and claimed.id == other
    assert archive.jobs.get(later).state == JobState.QUEUED


def test_dedup_key_queues_once(archive: Archive) -> None:
    first = archive.jobs.enqueue("forward", {"n": 1}, dedup_key="forward:PEER:1.2.3")
    second = archive.jobs.enqueue("forward", {"n": 2}, dedup_key="forward:PEER:1.2.3")
    assert first is not None and second is None
    jobs, total = archive.jobs.list(kind="forward")
    assert total == 1 and jobs[0].payload == {"n": 1}


def test_backoff_then_dead_letter(archive: Archive) -> None:
    queue = archive.jobs.queue
    job_id = archive.jobs.enqueue("flaky", max_attempts=3)
    assert job_id is not None
    for attempt in (1, 2, 3):
        claimed = queue.claim("w", ["flaky"], lease_s=30)
        assert claimed is not None and claimed.attempts == attempt
        before = datetime.now(UTC)
        state = queue.fail(claimed, "w", f"boom {attempt}", backoff_s=10, backoff_cap_s=25)
        job = archive.jobs.get(job_id)
        assert job.last_error == f"boom {attempt}"
        if attempt < 3:
            assert state == JobState.QUEUED == job.state
            wait = job.run_after - before
            expected = backoff_delay(attempt, 10, 25)  # 10, then 20
            assert timedelta(seconds=expected - 1) < wait <= timedelta(seconds=expected + 1)
            assert queue.claim("w", ["flaky"], lease_s=30) is None  # backing off
            _make_due(archive, job_id)
        else:
            assert state == JobState.FAILED == job.state  # the dead letter
    assert queue.claim("w", ["flaky"], lease_s=30) is None
    assert archive.jobs.list(state="failed")[1] == 1
    assert backoff_delay(10, 10, 25) == 25  # capped


def test_retry_revives_a_dead_letter(archive: Archive) -> None:
    queue = archive.jobs.queue
    job_id = archive.jobs.enqueue("flaky", max_attempts=1)
    assert job_id is not None
    claimed = queue.claim("w", ["flaky"], lease_s=30)
    assert claimed is not None
    assert queue.fail(claimed, "w", "boom", backoff_s=1, backoff_cap_s=1) == JobState.FAILED
    revived = archive.jobs.retry(job_id)
    assert revived.state == JobState.QUEUED and revived.attempts == 0
    again = queue.claim("w", ["flaky"], lease_s=30)
    assert again is not None and again.id == job_id and again.attempts == 1
    with pytest.raises(JobStateError):
        archive.jobs.retry(job_id)  # running
    with pytest.raises(JobNotFound):
        archive.jobs.retry(job_id + 1000)


def test_cancel(archive: Archive) -> None:
    queue = archive.jobs.queue
    queued = archive.jobs.enqueue("forward")
    running = archive.jobs.enqueue("forward")
    assert queued is not None and running is not None
    assert archive.jobs.cancel(queued).state == JobState.CANCELLED
    claimed = queue.claim("w", ["forward"], lease_s=30)
    assert claimed is not None and claimed.id == running
    archive.jobs.cancel(running)
    assert not queue.complete(running, "w")  # the worker's late result is ignored
    assert archive.jobs.get(running).state == JobState.CANCELLED
    with pytest.raises(JobStateError):
        archive.jobs.cancel(queued)
    with pytest.raises(JobNotFound):
        archive.jobs.cancel(queued + 1000)


def test_expired_lease_is_claimed_again_and_spent_ones_are_buried(archive: Archive) -> None:
    queue = archive.jobs.queue
    job_id = archive.jobs.enqueue("forward", max_attempts=2)
    assert job_id is not None
    assert queue.claim("dead-worker", ["forward"], lease_s=30) is not None
    assert queue.claim("w2", ["forward"], lease_s=30) is None  # lease still held
    assert queue.bury_expired() == 0
    _expire_lease(archive, job_id)  # the dead worker renewed nothing
    assert queue.claim("w2", ["forward"], lease_s=30) is not None
    job = archive.jobs.get(job_id)
    assert job.worker == "w2" and job.attempts == 2
    assert queue.bury_expired() == 0  # w2's lease holds
    _expire_lease(archive, job_id)
    assert queue.claim("w3", ["forward"], lease_s=30) is None  # no attempt left
    assert queue.bury_expired() == 1  # lapsed on its last attempt
    job = archive.jobs.get(job_id)
    assert job.state == JobState.FAILED and "lease expired" in job.last_error


def test_runner_runs_handlers_and_retries_failures(archive: Archive) -> None:
    seen: list[int] = []

    def handler(payload: dict[str, int]) -> None:
        seen.append(payload["n"])
        if payload["n"] == 2 and seen.count(2) == 1:
            raise RuntimeError("first try fails")

    archive.jobs.handle("count", handler, backoff_s=0.01, backoff_cap_s=0.01)
    ids = [archive.jobs.enqueue("count", {"n": n}) for n in (1, 2, 3)]
    runner = Runner(archive.jobs.queue, archive.jobs.handlers, threads=2, poll_s=0.02)
    runner.start()
    try:
        wait_until(lambda: archive.jobs.counts()["done"] == 3)
    finally:
        runner.stop()
    assert sorted(seen) == [1, 2, 2, 3]
    failed_once = archive.jobs.get(ids[1])  # type: ignore[arg-type]
    assert failed_once.attempts == 2 and "first try fails" in failed_once.last_error


def _expire_lease(archive: Archive, job_id: int) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    with archive.sessions.begin() as session:
        session.execute(update(Job).where(Job.pk == job_id).values(lease_expires=past))


def _make_due(archive: Archive, job_id: int) -> None:
    with archive.sessions.begin() as session:
        session.execute(update(Job).where(Job.pk == job_id).values(run_after=datetime.now(UTC)))


def test_history_is_pruned_but_dead_letters_stay(archive: Archive) -> None:
    queue = archive.jobs.queue
    done = archive.jobs.enqueue("forward")
    dead = archive.jobs.enqueue("flaky", max_attempts=1)
    waiting = archive.jobs.enqueue("forward", delay_s=3600)
    claimed = queue.claim("w", ["forward"], lease_s=30)
    assert claimed is not None and claimed.id == done and queue.complete(done, "w")
    failing = queue.claim("w", ["flaky"], lease_s=30)
    assert failing is not None
    queue.fail(failing, "w", "boom", backoff_s=1, backoff_cap_s=1)
    later = datetime.now(UTC) + timedelta(days=archive.settings.history_days, hours=1)
    assert archive.prune_history(now=datetime.now(UTC)) == (0, 0)  # nothing old yet
    assert archive.prune_history(now=later)[0] == 1
    assert {job.id for job in archive.jobs.list()[0]} == {dead, waiting}


def test_a_hung_handler_is_given_up_after_its_kinds_limit(archive: Archive) -> None:
    """The heartbeat renewed a hung handler's lease forever: the job stayed running and
    its thread was lost to every other job. Past ``max_run_s`` the attempt now fails
    (here dead-lettered: one attempt), and a new thread serves the queue meanwhile."""
    release = threading.Event()
    finished: list[str] = []

    def hangs(_payload: dict[str, int]) -> None:
        release.wait(60)
        finished.append("hung")

    archive.jobs.handle("hangs", hangs, max_run_s=0.3)
    archive.jobs.handle("quick", lambda _payload: finished.append("quick"))
    hung = archive.jobs.enqueue("hangs", max_attempts=1)
    assert hung is not None
    runner = Runner(archive.jobs.queue, archive.jobs.handlers, threads=1, lease_s=0.3, poll_s=0.02)
    runner.start()
    try:
        wait_until(lambda: archive.jobs.get(hung).state == JobState.FAILED, what="given up")
        assert "longer than 0.3 s" in archive.jobs.get(hung).last_error
        quick = archive.jobs.enqueue("quick")
        assert quick is not None
        wait_until(lambda: archive.jobs.get(quick).state == JobState.DONE, what="queue served")
    finally:
        release.set()
        runner.stop(timeout=10)
    assert finished[-1] == "hung"  # it did return at last, and changed nothing:
    assert archive.jobs.get(hung).state == JobState.FAILED
