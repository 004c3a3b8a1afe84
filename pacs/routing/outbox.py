"""The outbox: one row per study (or instances) to deliver, drained per destination by priority.

Each send is queued with a job (``route-send``, payload: its destination). A
job drains its destination: it takes the destination's lane (one drainer per
destination, under a lease, whichever node it runs on), then sends pending
rows highest priority first until none is left. So

* a destination that is down fails its own jobs (retried with back-off, dead
  letters visible in ``/api/jobs``) and holds nothing else up: other
  destinations have their own lanes and jobs;
* when it returns, the first job that runs delivers everything pending in
  priority order, and later jobs find nothing left (sending is idempotent);
* a job that finds its lane taken ends at once: the drainer takes its row
  too, since it looks for pending rows again after giving the lane up.

A row the destination refuses (a C-STORE failure status, a STOW-RS 409) is
that row's failure, not the destination's: it is marked ``failed`` with the
reason and the lane moves on; ``retry`` queues it again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.routing_models import RoutingLane, RoutingSend
from pacs.index.upsert import insert_ignore
from pacs.routing.values import UnknownRoute

PENDING, SENT, FAILED, CANCELLED = "pending", "sent", "failed", "cancelled"
STATES = (PENDING, SENT, FAILED, CANCELLED)
LANE_LEASE_S = 300.0
MAX_ERROR = 4000


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class SendView:
    """A send as the API shows it."""

    id: int
    destination: str
    study_uid: str
    sop_uids: list[str]
    priority: int
    state: str
    attempts: int
    total: int
    done: int
    failed: int
    last_error: str
    origin: str
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "destination": self.destination,
            "study_uid": self.study_uid,
            "sop_uids": self.sop_uids,
            "priority": self.priority,
            "state": self.state,
            "attempts": self.attempts,
            "progress": {"total": self.total, "sent": self.done, "failed": self.failed},
            "last_error": self.last_error,
            "origin": self.origin,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _view(row: RoutingSend) -> SendView:
    created, updated = _aware(row.created_at), _aware(row.updated_at)
    assert created is not None and updated is not None
    return SendView(
        id=row.pk,
        destination=row.destination,
        study_uid=row.study_uid,
        sop_uids=json.loads(row.sop_uids) if row.sop_uids else [],
        priority=row.priority,
        state=row.state,
        attempts=row.attempts,
        total=row.total,
        done=row.done,
        failed=row.failed,
        last_error=row.last_error,
        origin=row.origin,
        created_at=created,
        updated_at=updated,
    )


class Outbox:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # -- producers ----------------------------------------------------------------------------

    def add(
        self,
        session: Session,
        *,
        destination: str,
        study_uid: str,
        sop_uids: Sequence[str] = (),
        priority: int = 0,
        origin: str = "",
        dedup: str | None = None,
    ) -> int | None:
        """A pending row in the caller's transaction; ``None`` when ``dedup`` was seen."""
        now = utcnow()
        connection = session.connection()
        session.execute(
            insert_ignore(connection, RoutingLane, ["destination"]).values(destination=destination)
        )
        statement = (
            insert_ignore(connection, RoutingSend, ["dedup"])
            .values(
                destination=destination,
                study_uid=study_uid,
                sop_uids=json.dumps(list(sop_uids)) if sop_uids else "",
                priority=priority,
                state=PENDING,
                attempts=0,
                total=0,
                done=0,
                failed=0,
                last_error="",
                origin=origin[:160],
                dedup=dedup,
                created_at=now,
                updated_at=now,
            )
            .returning(RoutingSend.pk)
        )
        return session.execute(statement).scalar_one_or_none()

    # -- the lane -----------------------------------------------------------------------------

    def claim_lane(self, destination: str, holder: str) -> bool:
        """Become the destination's one drainer, unless another holds an unexpired lease."""
        now = utcnow()
        with self.sessions.begin() as session:
            session.execute(
                insert_ignore(session.connection(), RoutingLane, ["destination"]).values(
                    destination=destination
                )
            )
            taken = session.execute(
                update(RoutingLane)
                .where(
                    RoutingLane.destination == destination,
                    or_(RoutingLane.holder.is_(None), RoutingLane.lease_expires < now),
                )
                .values(holder=holder, lease_expires=now + timedelta(seconds=LANE_LEASE_S))
                .returning(RoutingLane.destination)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
        return taken is not None

    def renew_lane(self, destination: str, holder: str) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(RoutingLane)
                .where(RoutingLane.destination == destination, RoutingLane.holder == holder)
                .values(lease_expires=utcnow() + timedelta(seconds=LANE_LEASE_S))
                .execution_options(synchronize_session=False)
            )

    def release_lane(self, destination: str, holder: str) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(RoutingLane)
                .where(RoutingLane.destination == destination, RoutingLane.holder == holder)
                .values(holder=None, lease_expires=None)
                .execution_options(synchronize_session=False)
            )

    def next_pending(self, destination: str) -> SendView | None:
        """The destination's pending row to send first: highest priority, then oldest."""
        with self.sessions() as session:
            row = session.scalar(
                select(RoutingSend)
                .where(RoutingSend.destination == destination, RoutingSend.state == PENDING)
                .order_by(RoutingSend.priority.desc(), RoutingSend.pk)
                .limit(1)
            )
            return None if row is None else _view(row)

    # -- outcomes -----------------------------------------------------------------------------

    def progress(self, send_id: int, total: int, done: int, failed: int) -> None:
        self._set(send_id, total=total, done=done, failed=failed)

    def attempt(self, send_id: int, error: str) -> None:
        """One attempt that the destination's failure ended (the row stays pending)."""
        with self.sessions.begin() as session:
            session.execute(
                update(RoutingSend)
                .where(RoutingSend.pk == send_id)
                .values(
                    attempts=RoutingSend.attempts + 1,
                    last_error=error[:MAX_ERROR],
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )

    def finish(self, send_id: int, *, total: int, done: int, failed: int, error: str) -> None:
        """Sent when nothing was refused; failed (with why) otherwise."""
        with self.sessions.begin() as session:
            session.execute(
                update(RoutingSend)
                .where(RoutingSend.pk == send_id, RoutingSend.state == PENDING)
                .values(
                    state=SENT if not failed and not error else FAILED,
                    attempts=RoutingSend.attempts + 1,
                    total=total,
                    done=done,
                    failed=failed,
                    last_error=error[:MAX_ERROR],
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )

    def _set(self, send_id: int, **values: Any) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(RoutingSend)
                .where(RoutingSend.pk == send_id)
                .values(updated_at=utcnow(), **values)
                .execution_options(synchronize_session=False)
            )

    # -- administrators -----------------------------------------------------------------------

    def get(self, send_id: int) -> SendView:
        with self.sessions() as session:
            row = session.get(RoutingSend, send_id)
            if row is None:
                raise UnknownRoute(f"no send {send_id}")
            return _view(row)

    def list(
        self,
        *,
        state: str | None = None,
        destination: str | None = None,
        study_uid: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[SendView], int]:
        """Sends newest first, filtered; and how many match in all."""
        if state is not None and state not in STATES:
            raise ValueError(f"state: one of {', '.join(STATES)}")
        conditions = []
        if state is not None:
            conditions.append(RoutingSend.state == state)
        if destination is not None:
            conditions.append(RoutingSend.destination == destination)
        if study_uid is not None:
            conditions.append(RoutingSend.study_uid == study_uid)
        with self.sessions() as session:
            total = session.scalar(select(func.count()).select_from(RoutingSend).where(*conditions))
            rows = session.scalars(
                select(RoutingSend)
                .where(*conditions)
                .order_by(RoutingSend.pk.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return [_view(row) for row in rows], int(total or 0)

    def reopen(self, session: Session, send_id: int) -> SendView:
        """A failed or cancelled row pending again (in the caller's transaction)."""
        row = session.get(RoutingSend, send_id)
        if row is None:
            raise UnknownRoute(f"no send {send_id}")
        if row.state not in (FAILED, CANCELLED):
            raise ValueError(f"send {send_id} is {row.state}: only failed or cancelled ones")
        row.state, row.attempts, row.updated_at = PENDING, 0, utcnow()
        session.flush()
        return _view(row)

    def cancel(self, send_id: int) -> SendView:
        with self.sessions.begin() as session:
            row = session.get(RoutingSend, send_id)
            if row is None:
                raise UnknownRoute(f"no send {send_id}")
            if row.state != PENDING:
                raise ValueError(f"send {send_id} is {row.state}: only pending ones")
            row.state, row.updated_at = CANCELLED, utcnow()
            session.flush()
            return _view(row)
