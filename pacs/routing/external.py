"""Studies received from other facilities: marked external, patient ID mapped by citizen ID.

A study retrieved from a remote PACS, or sent with a consultation request, or
marked by hand (a CD from another hospital), keeps a row here: where it came
from and the patient ID it arrived with. When the arriving patient carries a
citizen ID (an Other Patient ID issued by ``fhir_citizen_id_issuer``, or of
type NI) that names a local patient (a HIS patient with that citizen ID, or
another patient of this archive with the same identifier), the study is moved
to the local patient ID by the archive's audited correction: the received
objects stay as they were, and the old ID stays findable in the versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.auth.principal import Principal
from pacs.index.models import Patient, PatientIdentifier, Study
from pacs.index.routing_models import ExternalStudy
from pacs.index.workflow_models import HisPatient
from pacs.routing.values import UnknownRoute

Correct = Callable[[Principal, str, dict[str, str], str], Any]


@dataclass(frozen=True)
class ExternalView:
    study_uid: str
    source: str
    original_patient_id: str
    mapped_patient_id: str
    citizen_id: str
    marked_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "external": True,
            "source": self.source,
            "original_patient_id": self.original_patient_id,
            "mapped_patient_id": self.mapped_patient_id,
            "citizen_id": self.citizen_id,
            "marked_at": self.marked_at.isoformat(),
        }


def _view(row: ExternalStudy) -> ExternalView:
    at = row.marked_at if row.marked_at.tzinfo else row.marked_at.replace(tzinfo=UTC)
    return ExternalView(
        row.study_uid,
        row.source,
        row.original_patient_id,
        row.mapped_patient_id,
        row.citizen_id,
        at,
    )


class ExternalStudies:
    def __init__(
        self, sessions: sessionmaker[Session], correct: Correct, citizen_issuer: str
    ) -> None:
        self.sessions = sessions
        self.correct = correct
        self.citizen_issuer = citizen_issuer

    def mark(self, study_uid: str, source: str, principal: Principal) -> ExternalView:
        """Mark the stored study external (again: the first source stays) and map its
        patient ID; ``UnknownRoute`` when no such study is stored."""
        patient_id, citizen_id, local = self._identity(study_uid)
        with self.sessions.begin() as session:
            row = session.get(ExternalStudy, study_uid)
            if row is None:
                row = ExternalStudy(
                    study_uid=study_uid,
                    source=source[:160],
                    original_patient_id=patient_id,
                    mapped_patient_id="",
                    citizen_id=citizen_id,
                    marked_at=datetime.now(UTC),
                )
                session.add(row)
        if local and local != patient_id:
            self.correct(
                principal,
                study_uid,
                {"PatientID": local},
                f"study from {source}: patient ID {patient_id} mapped to {local} by citizen ID",
            )
            with self.sessions.begin() as session:
                found = session.get(ExternalStudy, study_uid)
                if found is not None:
                    found.mapped_patient_id = local
        return self.get(study_uid)

    def _identity(self, study_uid: str) -> tuple[str, str, str]:
        """The study's patient ID, its citizen ID ("" when none), the local patient ID it
        names ("" when none does)."""
        with self.sessions() as session:
            patient = session.scalar(
                select(Patient)
                .join(Study, Study.patient_pk == Patient.pk)
                .where(Study.study_uid == study_uid)
            )
            if patient is None:
                raise UnknownRoute(f"no stored study {study_uid}")
            citizen = session.scalar(
                select(PatientIdentifier.value).where(
                    PatientIdentifier.patient_pk == patient.pk,
                    or_(
                        PatientIdentifier.issuer == self.citizen_issuer,
                        PatientIdentifier.type_of_id == "NI",
                    ),
                )
            )
            if not citizen:
                return patient.patient_id, "", ""
            his = session.scalar(
                select(HisPatient.patient_id).where(
                    HisPatient.citizen_id == citizen, HisPatient.merged_into.is_(None)
                )
            )
            local = his or session.scalar(
                select(Patient.patient_id)
                .join(PatientIdentifier, PatientIdentifier.patient_pk == Patient.pk)
                .where(
                    PatientIdentifier.value == citizen,
                    PatientIdentifier.issuer == self.citizen_issuer,
                    Patient.pk != patient.pk,
                )
                .order_by(Patient.pk)
                .limit(1)
            )
            return patient.patient_id, citizen, local or ""

    def get(self, study_uid: str) -> ExternalView:
        with self.sessions() as session:
            row = session.get(ExternalStudy, study_uid)
            if row is None:
                raise UnknownRoute(f"study {study_uid} is not marked external")
            return _view(row)

    def recent(
        self, limit: int = 100, offset: int = 0, citizen_id: str | None = None
    ) -> list[ExternalView]:
        """External studies newest first; with ``citizen_id``, that person's only (the
        2027 sharing rule: a received result is found by the patient's citizen ID)."""
        query = select(ExternalStudy).order_by(ExternalStudy.marked_at.desc())
        if citizen_id:
            query = query.where(ExternalStudy.citizen_id == citizen_id)
        with self.sessions() as session:
            rows = session.scalars(query.limit(limit).offset(offset)).all()
            return [_view(row) for row in rows]

    def are_external(self, study_uids: list[str]) -> set[str]:
        """Which of ``study_uids`` are external (for a list to flag them)."""
        return set(self.origins(study_uids))

    def origins(self, study_uids: list[str]) -> dict[str, str]:
        """Where each external one of ``study_uids`` came from (``facility:NAME``,
        ``ae:TITLE``, ``media``...), for the lists that mark them; one query per page."""
        if not study_uids:
            return {}
        with self.sessions() as session:
            rows = session.execute(
                select(ExternalStudy.study_uid, ExternalStudy.source).where(
                    ExternalStudy.study_uid.in_(study_uids[:1000])
                )
            ).all()
            return {uid: source for uid, source in rows}
