"""Events of the archive: the change feed, study-stable detection and its subscribers.

Two kinds of reaction, as DESIGN.md says:

* durable ones subscribe to **study stable** (no new instance for
  ``stable_study_seconds``, Orthanc's StableStudy): when a study becomes
  stable the leader's scheduler records a ``stable-study`` change and queues
  one job per subscriber, in the same transaction, so an event is never lost
  and never fired twice for the same arrival. A late instance touches the
  study's ``updated_at`` (which ingest already does) and the study becomes
  stable again later.
* cheap in-process ones (metrics) subscribe to each stored instance; they may
  be lost with the process and must not block ingest.

Nothing here adds a statement per instance: new-study and new-series changes
are written by the index writer when it creates those rows, and stability is
read from ``study.updated_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.ingest import IngestResult
from pacs.index.changes import record_changes
from pacs.index.jobs_models import Change, StudyStable
from pacs.index.models import Study
from pacs.jobs.queue import JobQueue

log = logging.getLogger(__name__)

STABLE_BATCH = 500
RESCAN_SLACK_S = 600.0  # an ingest may commit this long after the time it stamped

InstanceListener = Callable[[IngestResult], None]


@dataclass(frozen=True)
class ChangeView:
    seq: int
    kind: str  # new-study, new-series, stable-study
    study_uid: str
    series_uid: str
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class StableSubscriber:
    """Queue a job of ``kind`` with payload ``{"study_uid": ...}`` when a study is stable."""

    kind: str
    max_attempts: int


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Events:
    def __init__(
        self, sessions: sessionmaker[Session], queue: JobQueue, stable_after_s: float
    ) -> None:
        self.sessions = sessions
        self.queue = queue
        self.stable_after_s = stable_after_s
        self._stable_subscribers: list[StableSubscriber] = []
        self._instance_listeners: list[InstanceListener] = []
        self._scanned_to: datetime | None = None  # studies older than this were all checked

    # -- subscriptions ----------------------------------------------------------------------

    def on_study_stable(self, job_kind: str, *, max_attempts: int = 5) -> None:
        """Queue a ``job_kind`` job (payload ``study_uid``) each time a study becomes stable."""
        if any(s.kind == job_kind for s in self._stable_subscribers):
            raise ValueError(f"job kind {job_kind!r} already subscribes to study-stable")
        self._stable_subscribers.append(StableSubscriber(job_kind, max_attempts))

    def on_instance(self, listener: InstanceListener) -> None:
        """Call ``listener(ingest_result)`` in-process after each stored instance (may be lost)."""
        self._instance_listeners.append(listener)

    def instance_stored(self, result: IngestResult) -> None:
        for listener in self._instance_listeners:
            try:
                listener(result)
            except Exception:  # a metric must never fail a store
                log.exception("instance listener %r failed", listener)

    # -- the feed ---------------------------------------------------------------------------

    def changes(self, since: int = 0, limit: int = 100) -> list[ChangeView]:
        """Changes with a sequence number above ``since``, oldest first, at most ``limit``.

        Numbers become visible in order (:mod:`pacs.index.changes`): poll with the
        last number you saw and you see every change, on SQLite and PostgreSQL.
        """
        with self.sessions() as session:
            rows = session.scalars(
                select(Change).where(Change.seq > since).order_by(Change.seq).limit(limit)
            ).all()
        return [
            ChangeView(row.seq, row.kind, row.study_uid, row.series_uid, _aware(row.at))
            for row in rows
        ]

    def last_change(self) -> int:
        """The highest sequence number in the feed, 0 when it is empty."""
        with self.sessions() as session:
            return int(session.scalar(select(func.max(Change.seq))) or 0)

    def prune(self, before: datetime) -> int:
        """Delete change rows older than ``before`` (a reader that far behind starts over)."""
        with self.sessions.begin() as session:
            result = session.execute(delete(Change).where(Change.at < before))
            return int(getattr(result, "rowcount", 0) or 0)

    # -- study stable (a periodic task on the leader) ---------------------------------------

    def check_stable(self, now: datetime | None = None) -> int:
        """Declare every study quiet for ``stable_after_s`` stable; how many were."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(seconds=self.stable_after_s)
        fired = 0
        while True:
            batch = self._unstable_before(cutoff)
            progress = 0
            for study_pk, study_uid, updated_at in batch:
                try:
                    progress += self._fire(study_pk, study_uid, updated_at, now)
                except IntegrityError:  # deleted meanwhile: nothing to announce
                    log.info("study %s left the index before it was declared stable", study_uid)
            fired += progress
            if len(batch) < STABLE_BATCH or not progress:
                break
        self._scanned_to = cutoff
        return fired

    def _unstable_before(self, cutoff: datetime) -> list[tuple[int, str, datetime]]:
        query = (
            select(Study.pk, Study.study_uid, Study.updated_at)
            .outerjoin(StudyStable, StudyStable.study_pk == Study.pk)
            .where(
                Study.updated_at <= cutoff,
                or_(StudyStable.study_pk.is_(None), StudyStable.updated_at < Study.updated_at),
            )
            .order_by(Study.updated_at)
            .limit(STABLE_BATCH)
        )
        if self._scanned_to is not None:  # after the first full scan, only the recent window
            query = query.where(
                Study.updated_at > self._scanned_to - timedelta(seconds=RESCAN_SLACK_S)
            )
        with self.sessions() as session:
            return [(pk, uid, updated) for pk, uid, updated in session.execute(query).all()]

    def _fire(self, study_pk: int, study_uid: str, updated_at: datetime, now: datetime) -> int:
        """Record one stable-study event and queue its subscribers' jobs, exactly once."""
        with self.sessions.begin() as session:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            claim = dialect.insert(StudyStable).values(study_pk=study_pk, updated_at=updated_at)
            claim = claim.on_conflict_do_update(
                index_elements=["study_pk"],
                set_={"updated_at": claim.excluded.updated_at},
                where=StudyStable.updated_at < claim.excluded.updated_at,
            ).returning(StudyStable.study_pk)
            if session.execute(claim).scalar_one_or_none() is None:
                return 0  # already fired for this arrival (another leader, a moment ago)
            stamp = _aware(updated_at).isoformat()
            for subscriber in self._stable_subscribers:
                self.queue.enqueue(
                    subscriber.kind,
                    {"study_uid": study_uid},
                    dedup_key=f"{subscriber.kind}:{study_uid}:{stamp}",
                    max_attempts=subscriber.max_attempts,
                    session=session,
                )
            change = {"kind": "stable-study", "study_uid": study_uid, "series_uid": "", "at": now}
            record_changes(session, [change])  # last: see pacs.index.changes
        if self._stable_subscribers:
            self.queue.notify()
        return 1
