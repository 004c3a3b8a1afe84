"""The durable job queue: enqueue, claim under a lease, finish, fail with back-off, retry, cancel.

Claiming is one ``UPDATE ... WHERE pk = (SELECT ... LIMIT 1) RETURNING``. On
PostgreSQL the inner select takes ``FOR UPDATE SKIP LOCKED``, so any number of
runners on any number of nodes claim different jobs without waiting on each
other. On SQLite the statement is a write from its first step (SQLite takes
the one write lock before reading), so claims simply queue one after another:
the single writer is the database's own.

A claimed job carries a lease. A worker that dies (kill -9, power cut) stops
renewing it; once it expires the job is claimable again, which is why
handlers must be idempotent: a job can run twice, never zero times.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.jobs_models import Job
from pacs.index.upsert import insert_ignore

DEFAULT_MAX_ATTEMPTS = 5
MAX_ERROR_CHARS = 4000


class JobState(StrEnum):
    QUEUED = "queued"  # waiting for run_after
    RUNNING = "running"  # claimed by a worker under a lease
    DONE = "done"
    FAILED = "failed"  # the dead letter: max attempts spent, waits for an administrator
    CANCELLED = "cancelled"


class JobNotFound(LookupError):
    """No job has this id."""


class JobStateError(ValueError):
    """The job's state does not allow the operation (e.g. cancelling a finished job)."""


@dataclass(frozen=True)
class JobView:
    """A job as doors show it: plain values, no session attached."""

    id: int
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_expires: datetime | None
    worker: str | None
    last_error: str
    dedup_key: str | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "payload": self.payload,
            "state": self.state,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_after": self.run_after.isoformat(),
            "lease_expires": self.lease_expires.isoformat() if self.lease_expires else None,
            "worker": self.worker,
            "last_error": self.last_error,
            "dedup_key": self.dedup_key,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _view(job: Job) -> JobView:
    run_after = _aware(job.run_after)
    created = _aware(job.created_at)
    updated = _aware(job.updated_at)
    assert run_after is not None and created is not None and updated is not None
    return JobView(
        id=job.pk,
        kind=job.kind,
        payload=json.loads(job.payload),
        state=job.state,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        run_after=run_after,
        lease_expires=_aware(job.lease_expires),
        worker=job.worker,
        last_error=job.last_error,
        dedup_key=job.dedup_key,
        created_at=created,
        updated_at=updated,
    )


def backoff_delay(attempts: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: base, 2 base, 4 base... up to cap."""
    return float(min(cap_s, base_s * 2 ** max(0, attempts - 1)))


class JobQueue:
    """The job table seen as a queue. Thread-safe: every call opens its own session."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._wake = threading.Condition()

    # -- producers -------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        dedup_key: str | None = None,
        delay_s: float = 0.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        session: Session | None = None,
    ) -> int | None:
        """Queue a job; its id, or ``None`` when ``dedup_key`` already names a job.

        With ``session`` the job commits (or rolls back) with the caller's own
        writes: an event and the jobs it causes are recorded together.
        """
        if not kind or len(kind) > 64:
            raise ValueError("job kind must be 1-64 characters")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        now = utcnow()
        values = {
            "kind": kind,
            "payload": json.dumps(payload or {}, separators=(",", ":")),
            "state": JobState.QUEUED.value,
            "run_after": now + timedelta(seconds=delay_s),
            "attempts": 0,
            "max_attempts": max_attempts,
            "last_error": "",
            "dedup_key": dedup_key,
            "created_at": now,
            "updated_at": now,
        }
        if session is not None:
            job_id = self._insert(session, values)
        else:
            with self.sessions.begin() as own:
                job_id = self._insert(own, values)
        if session is None and job_id is not None and delay_s <= 0:
            self.notify()  # with the caller's session, it notifies after its commit
        return job_id

    @staticmethod
    def _insert(session: Session, values: dict[str, Any]) -> int | None:
        statement = (
            insert_ignore(session.connection(), Job, ["dedup_key"])
            .values(**values)
            .returning(Job.pk)
        )
        return session.execute(statement).scalar_one_or_none()

    def notify(self) -> None:
        """Wake this process's idle runners now (other nodes find the job on their next poll)."""
        with self._wake:
            self._wake.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until :meth:`notify` or ``timeout`` seconds, whichever comes first."""
        with self._wake:
            self._wake.wait(timeout)

    # -- workers ---------------------------------------------------------------------------

    def claim(self, worker: str, kinds: Sequence[str], lease_s: float) -> JobView | None:
        """Take the oldest due job of one of ``kinds`` under a lease for ``worker``, or ``None``.

        Due means queued with ``run_after`` passed, or running under a lease that
        expired (its worker died) with attempts left. The claim counts an attempt.
        """
        if not kinds:
            return None
        now = utcnow()
        due = or_(
            and_(Job.state == JobState.QUEUED.value, Job.run_after <= now),
            and_(
                Job.state == JobState.RUNNING.value,
                Job.lease_expires < now,
                Job.attempts < Job.max_attempts,
            ),
        )
        wanted = Job.kind.in_(list(kinds))
        with self.sessions() as session:
            # A read first: an idle runner polls, and on SQLite even an UPDATE that changes
            # nothing takes the one write lock that ingest needs.
            if session.scalar(select(Job.pk).where(due, wanted).limit(1)) is None:
                return None
        candidate = (
            select(Job.pk)
            .where(due, wanted)
            .order_by(Job.run_after, Job.pk)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(Job)
            .where(Job.pk == candidate)
            .values(
                state=JobState.RUNNING.value,
                worker=worker,
                lease_expires=now + timedelta(seconds=lease_s),
                attempts=Job.attempts + 1,
                updated_at=now,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        with self.sessions.begin() as session:
            job = session.execute(statement).scalar_one_or_none()
            return None if job is None else _view(job)

    def renew(self, job_ids: Iterable[int], worker: str, lease_s: float) -> None:
        """Extend the leases ``worker`` holds on ``job_ids`` (its heartbeat)."""
        ids = list(job_ids)
        if not ids:
            return
        now = utcnow()
        with self.sessions.begin() as session:
            session.execute(
                update(Job)
                .where(Job.pk.in_(ids), Job.worker == worker, Job.state == JobState.RUNNING.value)
                .values(lease_expires=now + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )

    def complete(self, job_id: int, worker: str) -> bool:
        """Mark done; ``False`` if ``worker`` no longer holds it (cancelled, or lease lapsed)."""
        return self._finish(job_id, worker, state=JobState.DONE.value, lease_expires=None)

    def fail(
        self, job: JobView, worker: str, error: str, *, backoff_s: float, backoff_cap_s: float
    ) -> str | None:
        """Record a failed attempt of ``job`` as claimed: queued again after back-off, or
        dead-lettered when its attempts are spent.

        Returns the new state, or ``None`` if ``worker`` no longer holds the job. One
        statement, conditioned on the claim, so SQLite never upgrades a read to a write.
        """
        now = utcnow()
        if job.attempts >= job.max_attempts:
            values: dict[str, Any] = {"state": JobState.FAILED.value}
        else:
            delay = backoff_delay(job.attempts, backoff_s, backoff_cap_s)
            values = {"state": JobState.QUEUED.value, "run_after": now + timedelta(seconds=delay)}
        with self.sessions.begin() as session:
            result = session.execute(
                update(Job)
                .where(
                    Job.pk == job.id,
                    Job.worker == worker,
                    Job.state == JobState.RUNNING.value,
                    Job.attempts == job.attempts,
                )
                .values(
                    last_error=error[:MAX_ERROR_CHARS], lease_expires=None, updated_at=now, **values
                )
                .returning(Job.pk)
                .execution_options(synchronize_session=False)
            )
            if result.scalar_one_or_none() is None:
                return None
        return str(values["state"])

    def _finish(self, job_id: int, worker: str, **values: Any) -> bool:
        with self.sessions.begin() as session:
            result = session.execute(
                update(Job)
                .where(Job.pk == job_id, Job.worker == worker, Job.state == JobState.RUNNING.value)
                .values(updated_at=utcnow(), **values)
                .returning(Job.pk)
                .execution_options(synchronize_session=False)
            )
            return result.scalar_one_or_none() is not None

    def bury_expired(self) -> int:
        """Dead-letter running jobs whose lease lapsed with no attempt left; how many."""
        now = utcnow()
        with self.sessions.begin() as session:
            rows = session.execute(
                update(Job)
                .where(
                    Job.state == JobState.RUNNING.value,
                    Job.lease_expires < now,
                    Job.attempts >= Job.max_attempts,
                )
                .values(
                    state=JobState.FAILED.value,
                    last_error=func.coalesce(Job.worker, "") + ": lease expired (worker died?)",
                    lease_expires=None,
                    updated_at=now,
                )
                .returning(Job.pk)
                .execution_options(synchronize_session=False)
            ).all()
            return len(rows)

    def prune_finished(self, before: datetime) -> int:
        """Delete done and cancelled jobs last changed before ``before``; how many."""
        with self.sessions.begin() as session:
            result = session.execute(
                delete(Job)
                .where(
                    Job.state.in_([JobState.DONE.value, JobState.CANCELLED.value]),
                    Job.updated_at < before,
                )
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # -- administrators --------------------------------------------------------------------

    def get(self, job_id: int) -> JobView:
        """The job; :class:`JobNotFound` if there is none."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id}")
            return _view(job)

    def list(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[JobView], int]:
        """Jobs newest first, filtered by state and kind; and how many match in all."""
        if state is not None and state not in {s.value for s in JobState}:
            raise ValueError(f"unknown job state {state!r}")
        conditions = []
        if state is not None:
            conditions.append(Job.state == state)
        if kind is not None:
            conditions.append(Job.kind == kind)
        with self.sessions() as session:
            total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
            jobs = session.scalars(
                select(Job).where(*conditions).order_by(Job.pk.desc()).limit(limit).offset(offset)
            ).all()
            return [_view(job) for job in jobs], total

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self.sessions() as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        return {state.value: 0 for state in JobState} | {str(s): int(n) for s, n in rows}

    def retry(self, job_id: int) -> JobView:
        """Queue the job again now with its attempts reset (a dead letter gets a new chance).

        :class:`JobNotFound`, or :class:`JobStateError` while it is running.
        """
        now = utcnow()
        view = self._transition(
            job_id,
            Job.state != JobState.RUNNING.value,
            "is running; cancel it first or wait",
            state=JobState.QUEUED.value,
            attempts=0,
            run_after=now,
            lease_expires=None,
            worker=None,
            updated_at=now,
        )
        self.notify()
        return view

    def cancel(self, job_id: int) -> JobView:
        """Stop the job from running (again); a running attempt's result is then ignored.

        :class:`JobNotFound`, or :class:`JobStateError` when it is already done, failed
        or cancelled.
        """
        return self._transition(
            job_id,
            Job.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
            "is not queued or running",
            state=JobState.CANCELLED.value,
            lease_expires=None,
            updated_at=utcnow(),
        )

    def _transition(self, job_id: int, allowed: Any, refusal: str, **values: Any) -> JobView:
        """One conditional UPDATE (no read-then-write, which SQLite may refuse under load)."""
        with self.sessions.begin() as session:
            job = session.execute(
                update(Job)
                .where(Job.pk == job_id, allowed)
                .values(**values)
                .returning(Job)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if job is not None:
                return _view(job)
        current = self.get(job_id)  # JobNotFound when there is none
        raise JobStateError(f"job {job_id} {refusal} (it is {current.state})")
