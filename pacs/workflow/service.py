"""Apply the HIS's commands to the index; list orders, messages and unmatched studies.

One transaction per message holds its effect and its log row (``hl7_message``),
so a message sent again (same control ID from the same application) finds its
first answer and changes nothing; a race between two copies ends at the unique
constraint and the loser answers with the winner's ACK.

Demographic changes reach studies already stored through the facade's audited
corrections (``correct``, given by the facade), after the commit: the HIS is the
master of demographics. If the store fails while correcting, a durable job
(``workflow-correct-patient``) finishes it.

Matching a stored study to its order is a study-stable job (``workflow-match``),
never work on the ingest path: accession number first, else the same patient and
modality with a step scheduled within a day of the study date.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.errors import InvalidRequest, StorageError, Unavailable
from pacs.auth.principal import Kind, Principal, Role
from pacs.index.models import Patient, Series, Study
from pacs.index.workflow_models import (
    HisPatient,
    Hl7Message,
    ImagingOrder,
    ScheduledStep,
    StudyOrder,
)
from pacs.jobs import Jobs
from pacs.names import fold, normalize
from pacs.workflow.commands import (
    Command,
    MergePatients,
    MessageRecord,
    OrderCommand,
    OrderControl,
    PatientData,
    UpdatePatient,
)
from pacs.workflow.errors import BadOrder, OrderConflict, UnknownOrder
from pacs.workflow.his_out import OrderStatusOut
from pacs.workflow.mpps import PerformedSteps
from pacs.workflow.worklist import WorklistQuery
from pacs.workflow.worklist import find as find_worklist

log = logging.getLogger(__name__)

Correct = Callable[[Principal, str, dict[str, str], str], object]
# (principal, prior ID, issuer, surviving ID, demographics, reason): an ADT^A40 merge of stored
# studies, through the facade, so that the prior ID stays findable as an alias.
Merge = Callable[[Principal, str, str, str, dict[str, str], str], object]

STATUSES = ("scheduled", "in progress", "completed", "discontinued", "read", "final")
CLOSED = ("completed", "discontinued", "read", "final")
MATCH_WINDOW = timedelta(days=1)
CORRECT_JOB = "workflow-correct-patient"
MATCH_JOB = "workflow-match"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MessageView:
    pk: int
    received_at: datetime
    peer: str
    sending_app: str
    sending_facility: str
    control_id: str | None
    message_type: str
    raw: str
    summary: dict[str, Any]
    ack_code: str
    error: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "received_at": self.received_at.isoformat(),
            "peer": self.peer,
            "sending_application": self.sending_app,
            "sending_facility": self.sending_facility,
            "control_id": self.control_id,
            "message_type": self.message_type,
            "raw": self.raw,
            "summary": self.summary,
            "ack_code": self.ack_code,
            "error": self.error,
        }


@dataclass(frozen=True)
class OrderView:
    accession_number: str
    placer_number: str
    filler_number: str
    status: str
    priority: str
    requested_procedure_id: str
    procedure_description: str
    procedure_code: str
    referring_physician: str
    modality: str
    scheduled_date: str
    patient: dict[str, str]
    steps: list[dict[str, str]]
    studies: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "accession_number": self.accession_number,
            "placer_number": self.placer_number,
            "filler_number": self.filler_number,
            "status": self.status,
            "priority": self.priority,
            "requested_procedure_id": self.requested_procedure_id,
            "procedure_description": self.procedure_description,
            "procedure_code": self.procedure_code,
            "referring_physician": self.referring_physician,
            "modality": self.modality,
            "scheduled_date": self.scheduled_date,
            "patient": self.patient,
            "steps": self.steps,
            "studies": self.studies,
        }


def _patient_json(row: HisPatient) -> dict[str, str]:
    return {
        "patient_id": row.patient_id,
        "issuer": row.issuer,
        "citizen_id": row.citizen_id,
        "name": row.name,
        "birth_date": row.birth_date,
        "sex": row.sex,
    }


class Workflow:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        jobs: Jobs,
        correct: Correct,
        status_out: OrderStatusOut | None = None,
        merge: Merge | None = None,
    ) -> None:
        self.sessions = sessions
        self.jobs = jobs
        self._correct = correct
        self._merge_patients = merge
        self.status_out = status_out or OrderStatusOut(sessions, jobs)
        # MPPS (pacs.workflow.mpps); the order's status changes go back to the HIS.
        self.performed = PerformedSteps(sessions, on_status=self.status_out.queue)
        jobs.handle(CORRECT_JOB, self._correct_job, backoff_s=60.0)
        jobs.handle(MATCH_JOB, self._match_job, backoff_s=30.0)

    # -- messages ---------------------------------------------------------------------------

    def previous_ack(self, sending_app: str, facility: str, control_id: str) -> str | None:
        """The ACK already sent for this control ID from this sender, or ``None`` (new)."""
        with self.sessions() as session:
            return session.scalar(
                select(Hl7Message.ack).where(
                    Hl7Message.sending_app == sending_app,
                    Hl7Message.sending_facility == facility,
                    Hl7Message.accepted_id == control_id,
                )
            )

    def record(self, record: MessageRecord) -> str:
        """Keep a message that had no effect (refused, malformed); the ACK to send.

        It is not remembered as answered: fixed and sent again, it is processed again."""
        with self.sessions.begin() as session:
            session.add(self._row(record, accepted=False))
        return record.ack

    def apply(self, command: Command, record: MessageRecord) -> str:
        """Apply ``command`` and keep ``record`` in one transaction; the ACK to send.

        Raises :class:`~pacs.workflow.errors.UnknownOrder`, ``OrderConflict`` or
        ``BadOrder`` (nothing applied, nothing kept: the door records the refusal).
        A duplicate control ID answers with the first ACK and applies nothing.
        """
        try:
            with self.sessions.begin() as session:
                pending = self._apply(session, command)
                session.add(self._row(record, accepted=True))
        except IntegrityError:
            return self._earlier_ack(record)
        reason = f"HL7 {record.message_type} {record.control_id} from {record.sending_app}"
        principal = Principal(Kind.AE, f"hl7:{record.sending_app}", Role.INTEGRATION, record.peer)
        for payload in pending:
            payload["reason"] = reason
            payload["principal"] = principal.name
            try:
                self._correct_studies(payload)
            except (StorageError, Unavailable):
                log.warning("correcting studies of %s deferred to a job", payload["patient_id"])
                self.jobs.enqueue(CORRECT_JOB, payload)
        return record.ack

    def _earlier_ack(self, record: MessageRecord) -> str:
        if record.control_id is not None:
            earlier = self.previous_ack(
                record.sending_app, record.sending_facility, record.control_id
            )
            if earlier is not None:
                return earlier
        raise InvalidRequest("the message could not be kept")  # another constraint failed

    @staticmethod
    def _row(record: MessageRecord, *, accepted: bool) -> Hl7Message:
        control_id = record.control_id[:64] if record.control_id is not None else None
        return Hl7Message(
            received_at=datetime.now(UTC),
            peer=record.peer[:64],
            sending_app=record.sending_app[:64],
            sending_facility=record.sending_facility[:64],
            control_id=control_id,
            accepted_id=control_id if accepted else None,
            message_type=record.message_type[:16],
            raw=record.raw,
            summary=json.dumps(record.summary, ensure_ascii=False),
            ack_code=record.ack_code,
            error=record.error,
            ack=record.ack,
        )

    def messages(self, limit: int = 50, offset: int = 0) -> tuple[list[MessageView], int]:
        """A page of kept messages, newest first, and how many there are."""
        with self.sessions() as session:
            total = session.scalar(select(func.count()).select_from(Hl7Message)) or 0
            rows = session.scalars(
                select(Hl7Message).order_by(Hl7Message.pk.desc()).limit(limit).offset(offset)
            ).all()
            views = [
                MessageView(
                    row.pk,
                    _aware(row.received_at),
                    row.peer,
                    row.sending_app,
                    row.sending_facility,
                    row.control_id,
                    row.message_type,
                    row.raw,
                    json.loads(row.summary or "{}"),
                    row.ack_code,
                    row.error,
                )
                for row in rows
            ]
        return views, int(total)

    # -- commands ---------------------------------------------------------------------------

    def _apply(self, session: Session, command: Command) -> list[dict[str, Any]]:
        """Apply in ``session``; the study corrections to make once committed."""
        if isinstance(command, UpdatePatient):
            self._upsert_patient(session, command.patient)
            return [self._demographics(command.patient, command.patient.patient_id)]
        if isinstance(command, MergePatients):
            return self._merge(session, command)
        return self._order(session, command)

    def _find_patient(self, session: Session, patient_id: str, issuer: str) -> HisPatient | None:
        return session.scalar(
            select(HisPatient).where(
                HisPatient.patient_id == patient_id, HisPatient.issuer == issuer
            )
        )

    def _upsert_patient(self, session: Session, data: PatientData) -> HisPatient:
        row = self._find_patient(session, data.patient_id, data.issuer)
        if row is None:
            row = HisPatient(patient_id=data.patient_id, issuer=data.issuer, merged_into=None)
            session.add(row)
        name = normalize(data.name)
        row.citizen_id = data.citizen_id or (row.citizen_id or "")
        row.name = name
        row.name_folded = fold(name)
        row.birth_date = data.birth_date
        row.sex = data.sex
        row.updated_at = datetime.now(UTC)
        session.flush()
        return row

    @staticmethod
    def _demographics(data: PatientData, stored_id: str) -> dict[str, Any]:
        values = {"PatientName": normalize(data.name), "PatientBirthDate": data.birth_date}
        if data.sex in ("M", "F", "O"):
            values["PatientSex"] = data.sex
        if stored_id != data.patient_id:
            values["PatientID"] = data.patient_id
        return {
            "patient_id": stored_id,
            "issuer": data.issuer,
            "values": {k: v for k, v in values.items() if v},
        }

    def _merge(self, session: Session, command: MergePatients) -> list[dict[str, Any]]:
        survivor = self._upsert_patient(session, command.patient)
        prior = self._find_patient(session, command.prior_id, command.prior_issuer)
        if prior is None:  # never seen by us: remember it, so the old ID stays findable
            prior = HisPatient(
                patient_id=command.prior_id,
                issuer=command.prior_issuer,
                citizen_id="",
                name=survivor.name,
                name_folded=survivor.name_folded,
                birth_date=survivor.birth_date,
                sex=survivor.sex,
                updated_at=datetime.now(UTC),
            )
            session.add(prior)
            session.flush()
        if prior.pk != survivor.pk:
            prior.merged_into = survivor.pk
            prior.updated_at = datetime.now(UTC)
            for order in session.scalars(
                select(ImagingOrder).where(ImagingOrder.patient_pk == prior.pk)
            ):
                order.patient_pk = survivor.pk
        prior_studies = self._demographics(command.patient, command.prior_id)
        prior_studies["merge_into"] = command.patient.patient_id
        return [prior_studies, self._demographics(command.patient, command.patient.patient_id)]

    def _order(self, session: Session, command: OrderCommand) -> list[dict[str, Any]]:
        if not command.accession_number:
            raise BadOrder("the order has no accession number", "OBR-18")
        order = session.scalar(
            select(ImagingOrder).where(ImagingOrder.accession_number == command.accession_number)
        )
        now = datetime.now(UTC)
        if command.control in (OrderControl.CANCEL, OrderControl.DISCONTINUE):
            if order is None:
                raise UnknownOrder(f"no order with accession number {command.accession_number}")
            if order.status in ("completed", "read", "final"):
                raise OrderConflict(f"order {command.accession_number} is already {order.status}")
            order.status = "discontinued"
            order.updated_at = now
            return []
        if command.control == OrderControl.CHANGE and order is None:
            raise UnknownOrder(f"no order with accession number {command.accession_number}")
        patient = self._find_patient(
            session, command.patient.patient_id, command.patient.issuer
        ) or self._upsert_patient(session, command.patient)
        if order is None:
            order = ImagingOrder(
                accession_number=command.accession_number, status="scheduled", created_at=now
            )
            session.add(order)
        elif order.patient_pk != patient.pk:
            raise OrderConflict(
                f"accession number {command.accession_number} names another patient's order"
            )
        elif order.status in CLOSED and command.control == OrderControl.CHANGE:
            raise OrderConflict(f"order {command.accession_number} is already {order.status}")
        order.patient_pk = patient.pk
        order.placer_number = command.placer_number
        order.filler_number = command.filler_number
        order.requested_procedure_id = command.requested_procedure_id or command.accession_number
        order.procedure_description = command.procedure_description
        order.procedure_code = command.procedure_code
        order.referring_physician = normalize(command.referring_physician)
        order.priority = command.priority
        first = command.steps[0] if command.steps else None
        order.modality = first.modality if first else ""
        order.scheduled_date = first.start_date if first else ""
        order.updated_at = now
        order.steps = [
            ScheduledStep(
                step_id=step.step_id or f"{command.accession_number}-{n}",
                modality=step.modality,
                station_ae=step.station_ae,
                start_date=step.start_date,
                start_time=step.start_time,
                description=step.description,
                code=step.code,
            )
            for n, step in enumerate(command.steps, start=1)
        ]
        session.flush()
        return []

    # -- demographics to stored studies -----------------------------------------------------

    def _correct_job(self, payload: dict[str, Any]) -> None:
        self._correct_studies(payload)

    def _correct_studies(self, payload: dict[str, Any]) -> None:
        """Correct every stored study of the patient to the HIS's values (idempotent)."""
        values: dict[str, str] = payload["values"]
        if not values:
            return
        principal = Principal(Kind.AE, str(payload.get("principal", "hl7")), Role.INTEGRATION)
        reason = str(payload.get("reason", "HL7"))
        if payload.get("merge_into") and self._merge_patients is not None:
            demographics = {k: v for k, v in values.items() if k != "PatientID"}
            self._merge_patients(
                principal,
                str(payload["patient_id"]),
                str(payload.get("issuer", "")),
                str(payload["merge_into"]),
                demographics,
                reason,
            )
            return
        with self.sessions() as session:
            query = (
                select(Study.study_uid)
                .join(Patient, Patient.pk == Study.patient_pk)
                .where(Patient.patient_id == payload["patient_id"])
            )
            if payload.get("issuer"):
                query = query.where(or_(Patient.issuer == payload["issuer"], Patient.issuer == ""))
            study_uids = list(session.scalars(query))
        for study_uid in study_uids:
            self._correct(principal, study_uid, values, reason)

    # -- orders -----------------------------------------------------------------------------

    def orders(
        self,
        *,
        scheduled: str | None = None,
        modality: str | None = None,
        status: str | None = None,
        patient: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[OrderView]:
        """Orders, newest first. ``scheduled``: ``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``;
        ``patient``: a patient ID (a merged one finds the survivor's orders), a citizen
        ID or part of a name (accents ignored). Raises InvalidRequest for a bad filter."""
        query = select(ImagingOrder).order_by(ImagingOrder.pk.desc())
        if scheduled:
            low, _, high = scheduled.partition("-")
            if not all(part.isdigit() and len(part) == 8 for part in (low, high or low)):
                raise InvalidRequest("date must be YYYYMMDD or YYYYMMDD-YYYYMMDD")
            query = query.where(
                ImagingOrder.scheduled_date >= low, ImagingOrder.scheduled_date <= (high or low)
            )
        if modality:
            query = query.where(ImagingOrder.modality == modality.upper())
        if status:
            if status not in STATUSES:
                raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
            query = query.where(ImagingOrder.status == status)
        with self.sessions() as session:
            if patient:
                query = query.where(ImagingOrder.patient_pk.in_(self._patients(session, patient)))
            rows = session.scalars(query.limit(limit).offset(offset)).all()
            return [self._order_view(session, row) for row in rows]

    def _patients(self, session: Session, text: str) -> set[int]:
        found = set(
            session.scalars(
                select(HisPatient.pk).where(
                    or_(
                        HisPatient.patient_id == text,
                        HisPatient.citizen_id == text,
                        HisPatient.name_folded.contains(fold(text)),
                    )
                )
            )
        )
        frontier = set(found)
        for _ in range(16):  # follow merges to the surviving patient
            nxt = (
                set(
                    session.scalars(
                        select(HisPatient.merged_into).where(
                            HisPatient.pk.in_(frontier), HisPatient.merged_into.is_not(None)
                        )
                    )
                )
                - found
            )
            if not nxt:
                break
            found |= {pk for pk in nxt if pk is not None}
            frontier = {pk for pk in nxt if pk is not None}
        return found

    def order(self, accession_number: str) -> OrderView | None:
        """The order with this accession number, or ``None``."""
        with self.sessions() as session:
            row = session.scalar(
                select(ImagingOrder).where(ImagingOrder.accession_number == accession_number)
            )
            return self._order_view(session, row) if row is not None else None

    def order_of_study(self, study_uid: str) -> OrderView | None:
        """The order a stored study was matched to, or ``None`` (unmatched or not yet looked at)."""
        with self.sessions() as session:
            row = session.scalar(
                select(ImagingOrder)
                .join(StudyOrder, StudyOrder.order_pk == ImagingOrder.pk)
                .where(StudyOrder.study_uid == study_uid)
            )
            return self._order_view(session, row) if row is not None else None

    @staticmethod
    def _order_view(session: Session, row: ImagingOrder) -> OrderView:
        studies = list(
            session.scalars(select(StudyOrder.study_uid).where(StudyOrder.order_pk == row.pk))
        )
        return OrderView(
            accession_number=row.accession_number,
            placer_number=row.placer_number,
            filler_number=row.filler_number,
            status=row.status,
            priority=row.priority,
            requested_procedure_id=row.requested_procedure_id,
            procedure_description=row.procedure_description,
            procedure_code=row.procedure_code,
            referring_physician=row.referring_physician,
            modality=row.modality,
            scheduled_date=row.scheduled_date,
            patient=_patient_json(row.patient),
            steps=[
                {
                    "step_id": s.step_id,
                    "modality": s.modality,
                    "station_ae": s.station_ae,
                    "start_date": s.start_date,
                    "start_time": s.start_time,
                    "description": s.description,
                    "code": s.code,
                }
                for s in row.steps
            ],
            studies=studies,
        )

    # -- modality worklist ------------------------------------------------------------------

    def worklist(self, query: WorklistQuery) -> list[Dataset]:
        """Scheduled procedure steps of open orders matching ``query``, as UTF-8 worklist
        items (see :mod:`pacs.workflow.worklist`); InvalidRequest for a bad date range."""
        with self.sessions() as session:
            return find_worklist(session, query)

    # -- matching stored studies to orders (a study-stable job) -----------------------------

    def _match_job(self, payload: dict[str, Any]) -> None:
        self.match_study(str(payload["study_uid"]))

    def match_study(self, study_uid: str) -> str | None:
        """Tie a stored study to its order; the accession number matched, or ``None``.

        By accession number, else by the same patient ID and modality with a step
        scheduled within a day of the study date. A study with no order is kept
        as unmatched (``unmatched_studies``). Once matched, the HIS's demographics
        (and the order's accession number, when the study has none) win over what
        the console typed: an audited correction. Idempotent."""
        with self.sessions.begin() as session:
            study = session.scalar(select(Study).where(Study.study_uid == study_uid))
            if study is None:
                return None
            order, how = None, "none"
            if study.accession_number:
                order = session.scalar(
                    select(ImagingOrder).where(
                        ImagingOrder.accession_number == study.accession_number
                    )
                )
                how = "accession" if order is not None else how
            if order is None:
                order = self._by_patient(session, study)
                how = "patient" if order is not None else how
            link = session.get(StudyOrder, study_uid)
            if link is None:
                link = StudyOrder(study_uid=study_uid)
                session.add(link)
            link.order_pk = order.pk if order is not None else None
            link.matched_by = how
            link.matched_at = datetime.now(UTC)
            if order is None:
                return None
            accession = order.accession_number
            values = self._his_values(session, study, order)
        if values:
            principal = Principal(Kind.AE, "hl7:order-match", Role.INTEGRATION)
            self._correct(principal, study_uid, values, f"matched to HIS order {accession}")
        return accession

    @staticmethod
    def _his_values(session: Session, study: Study, order: ImagingOrder) -> dict[str, str]:
        """What differs between the study and its order's patient (the HIS's values)."""
        stored = session.get(Patient, study.patient_pk)
        his = order.patient
        wanted = {
            "PatientID": his.patient_id,
            "PatientName": his.name,
            "PatientBirthDate": his.birth_date,
            "PatientSex": his.sex if his.sex in ("M", "F", "O") else "",
            "AccessionNumber": order.accession_number if not study.accession_number else "",
        }
        present = {
            "PatientID": stored.patient_id if stored else "",
            "PatientName": stored.name if stored else "",
            "PatientBirthDate": stored.birth_date if stored else "",
            "PatientSex": stored.sex if stored else "",
            "AccessionNumber": study.accession_number,
        }
        return {k: v for k, v in wanted.items() if v and v != present[k]}

    def _by_patient(self, session: Session, study: Study) -> ImagingOrder | None:
        if len(study.study_date) != 8 or not study.study_date.isdigit():
            return None
        patient_id = session.scalar(
            select(Patient.patient_id).where(Patient.pk == study.patient_pk)
        )
        modalities = set(
            session.scalars(select(Series.modality).where(Series.study_pk == study.pk))
        )
        day = date(int(study.study_date[:4]), int(study.study_date[4:6]), int(study.study_date[6:]))
        low = (day - MATCH_WINDOW).strftime("%Y%m%d")
        high = (day + MATCH_WINDOW).strftime("%Y%m%d")
        return session.scalar(
            select(ImagingOrder)
            .join(HisPatient, HisPatient.pk == ImagingOrder.patient_pk)
            .where(
                HisPatient.patient_id == patient_id,
                ImagingOrder.modality.in_(modalities),
                ImagingOrder.scheduled_date >= low,
                ImagingOrder.scheduled_date <= high,
                ImagingOrder.status.not_in(("discontinued",)),
            )
            .order_by(ImagingOrder.pk.desc())
            .limit(1)
        )

    def unmatched_studies(self, limit: int = 100, offset: int = 0) -> list[dict[str, str]]:
        """Stored studies that arrived with no order, newest first (the reconciliation list)."""
        with self.sessions() as session:
            rows = session.execute(
                select(
                    Study.study_uid,
                    Study.accession_number,
                    Study.study_date,
                    Patient.patient_id,
                    Patient.name,
                )
                .join(StudyOrder, StudyOrder.study_uid == Study.study_uid)
                .join(Patient, Patient.pk == Study.patient_pk)
                .where(StudyOrder.order_pk.is_(None))
                .order_by(StudyOrder.matched_at.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [
            {
                "study_uid": uid,
                "accession_number": accession,
                "study_date": study_date,
                "patient_id": pid,
                "patient_name": name,
            }
            for uid, accession, study_date, pid, name in rows
        ]
