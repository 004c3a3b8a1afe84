"""Modality Performed Procedure Steps (PS3.4 F.7): the modality says it started and finished.

N-CREATE records a step ``IN PROGRESS``; N-SET may change its attributes and
end it ``COMPLETED`` or ``DISCONTINUED``; after that nothing changes (PS3.4
F.7.2.2: "may no longer be updated"). The order named by the step's Scheduled
Step Attributes (accession number) follows: in progress, completed, discontinued.
The performed series are kept, to be compared with the stored ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.errors import Conflict, InvalidRequest, NotFound
from pacs.index.models import Series
from pacs.index.workflow_models import ImagingOrder, PerformedStep

IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
ORDER_STATUS = {IN_PROGRESS: "in progress", COMPLETED: "completed", DISCONTINUED: "discontinued"}


class StepExists(Conflict):
    """N-CREATE for a SOP Instance UID already recorded."""


class StepClosed(Conflict):
    """N-SET on a step already completed or discontinued."""


@dataclass(frozen=True)
class StepReport:
    """What the modality reports: status and, when known, its order and performed series."""

    status: str
    accession_number: str = ""
    study_uid: str = ""
    station_ae: str = ""
    performed_series: tuple[str, ...] | None = None  # None: not given in this message


@dataclass(frozen=True)
class StepView:
    sop_instance_uid: str
    status: str
    accession_number: str
    performed_series: list[str]
    stored_series: list[str]  # of those, the ones the archive holds


StatusListener = Callable[[Session, str, str], None]  # (session, accession, order status)


class PerformedSteps:
    def __init__(
        self, sessions: sessionmaker[Session], on_status: StatusListener | None = None
    ) -> None:
        self.sessions = sessions
        self.on_status = on_status

    def create(self, uid: str, report: StepReport) -> None:
        """Record a new step (status must be IN PROGRESS); StepExists, InvalidRequest."""
        if report.status != IN_PROGRESS:
            raise InvalidRequest("a performed procedure step is created IN PROGRESS")
        now = datetime.now(UTC)
        try:
            with self.sessions.begin() as session:
                session.add(
                    PerformedStep(
                        sop_instance_uid=uid,
                        status=IN_PROGRESS,
                        accession_number=report.accession_number[:16],
                        study_uid=report.study_uid[:64],
                        station_ae=report.station_ae[:16],
                        performed_series=json.dumps(list(report.performed_series or ())),
                        created_at=now,
                        updated_at=now,
                    )
                )
                session.flush()
                self._order_follows(session, report.accession_number, IN_PROGRESS)
        except IntegrityError as exc:
            raise StepExists(f"performed procedure step {uid} already exists") from exc

    def update(self, uid: str, report: StepReport) -> None:
        """Apply an N-SET; NotFound, StepClosed, InvalidRequest (bad status)."""
        if report.status and report.status not in ORDER_STATUS:
            raise InvalidRequest(f"status {report.status!r} is not a performed step status")
        with self.sessions.begin() as session:
            row = session.get(PerformedStep, uid, with_for_update=True)
            if row is None:
                raise NotFound(f"no performed procedure step {uid}")
            if row.status != IN_PROGRESS:
                raise StepClosed(f"performed procedure step {uid} is {row.status}")
            if report.performed_series is not None:
                row.performed_series = json.dumps(list(report.performed_series))
            if report.status:
                row.status = report.status
            row.updated_at = datetime.now(UTC)
            self._order_follows(session, row.accession_number, row.status)

    def get(self, uid: str) -> StepView | None:
        """The step, with which of its performed series are stored here; ``None``."""
        with self.sessions() as session:
            row = session.get(PerformedStep, uid)
            if row is None:
                return None
            performed = json.loads(row.performed_series or "[]")
            stored = set(
                session.scalars(select(Series.series_uid).where(Series.series_uid.in_(performed)))
            )
            return StepView(
                uid,
                row.status,
                row.accession_number,
                performed,
                [s for s in performed if s in stored],
            )

    def _order_follows(self, session: Session, accession: str, status: str) -> None:
        if not accession:
            return
        order = session.scalar(
            select(ImagingOrder).where(ImagingOrder.accession_number == accession)
        )
        if order is not None and order.status not in ("read", "final"):
            order.status = ORDER_STATUS[status]
            order.updated_at = datetime.now(UTC)
            if self.on_status is not None:
                self.on_status(session, accession, order.status)
