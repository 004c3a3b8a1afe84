"""Moving a series to another study (of the same or another patient), audited and undoable.

A series sent under the wrong study (the technologist picked the previous
patient's worklist entry) is moved, not deleted: in one transaction its row
joins the target study (an existing one, or a new study made for the patient
named), the target's presented attributes become its full patient and study
identity *including StudyInstanceUID*, each moved instance's stored DICOM JSON
says so, and both studies get a correction version. Then the corrected-copy
machinery of :mod:`pacs.archive.corrections` writes, for every instance of the
target that does not yet carry those values, a copy with them in its header
(the objects as received stay). From the commit on, QIDO, C-FIND, WADO and
C-GET/C-MOVE show the series in the target study with the target's patient.

A source study left without series leaves the index (its attributes are kept
in the move's record, so that an undo brings it back). Every move is recorded
as a :class:`~pacs.index.lifecycle_models.PatientMove` of kind ``series``
(source and target are study UIDs there) and audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from pydicom.uid import generate_uid
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.corrections import (
    CORRECTABLE,
    MAX_REASON,
    Corrections,
    _present,
    _stamp,
    corrected_json,
)
from pacs.archive.errors import InvalidCorrection, NotFound
from pacs.archive.patients import MoveView, PatientRef, _view
from pacs.audit import AuditTrail
from pacs.auth.principal import Principal
from pacs.index.jobs_models import StudyStable
from pacs.index.lifecycle_models import CorrectedStudy, CorrectionVersion, PatientMove
from pacs.index.models import Instance, Patient, PatientIdentifier, Series, Study
from pacs.names import fold

STUDY_COLUMNS = (
    "study_date",
    "study_time",
    "accession_number",
    "study_id",
    "study_description",
    "referring_physician_name",
    "referring_physician_folded",
    "institution_name",
)


class SeriesMoves:
    """Move a series between studies, and undo such a move."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        corrections: Corrections,
        audit: AuditTrail,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.corrections = corrections
        self.audit = audit
        self.clock = clock

    def move(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str,
        reason: str,
        *,
        target_study_uid: str | None = None,
        patient: PatientRef | None = None,
    ) -> MoveView:
        """Move ``series_uid`` of ``study_uid`` to ``target_study_uid``, or to a new study of
        ``patient`` (created with the source's study attributes). Raises NotFound and
        InvalidCorrection (no target or both, the same study, no reason)."""
        reason = reason.strip()[:MAX_REASON]
        if not reason:
            raise InvalidCorrection("a reason is required")
        if (target_study_uid is None) == (patient is None):
            raise InvalidCorrection("give either target_study_uid or patient_id")
        if target_study_uid == study_uid:
            raise InvalidCorrection("the series is already in that study")
        with self.sessions.begin() as session:
            source = self._study(session, study_uid)
            series = session.scalar(
                select(Series).where(Series.series_uid == series_uid, Series.study_pk == source.pk)
            )
            if series is None:
                raise NotFound(f"series {series_uid} not found in study {study_uid}")
            if target_study_uid is not None:
                target = self._study(session, target_study_uid)
            else:
                assert patient is not None
                target = self._new_study(session, source, patient)
            snapshot = self._snapshot(session, source)
            self._attach(session, principal, series, source, target, reason)
            target_uid = target.study_uid
        self.corrections.reapply(target_uid)
        view = self._record(principal, study_uid, target_uid, series_uid, snapshot, reason)
        self.audit.record(
            principal,
            "move-series",
            patient_id=snapshot["patient_id"],
            study_uid=study_uid,
            detail=json.dumps(view.as_json(), ensure_ascii=False),
        )
        return view

    def undo(self, principal: Principal, move: PatientMove, reason: str) -> None:
        """Move the series back to its first study (made again from the record when gone)."""
        snapshot = json.loads(move.source)
        series_uid = json.loads(move.studies)[0]
        with self.sessions.begin() as session:
            current = session.scalar(
                select(Study)
                .join(Series, Series.study_pk == Study.pk)
                .where(Series.series_uid == series_uid)
            )
            if current is None:
                raise NotFound(f"series {series_uid} is no longer stored")
            series = session.scalar(select(Series).where(Series.series_uid == series_uid))
            assert series is not None
            back = session.scalar(select(Study).where(Study.study_uid == move.source_id))
            if back is None:
                back = self._recreate(session, snapshot)
            self._attach(session, principal, series, current, back, f"undo: {reason}")
            back_uid = back.study_uid
        self.corrections.reapply(back_uid)

    # -- steps ----------------------------------------------------------------------------------

    @staticmethod
    def _study(session: Session, study_uid: str) -> Study:
        found = session.execute(
            select(Study).where(Study.study_uid == study_uid).with_for_update()
        ).scalar_one_or_none()
        if found is None:
            raise NotFound(f"study {study_uid} not found")
        return found

    @staticmethod
    def _patient(session: Session, ref: PatientRef, like: Patient | None = None) -> Patient:
        found = session.scalar(
            select(Patient).where(
                Patient.patient_id == ref.patient_id, Patient.issuer == ref.issuer
            )
        )
        if found is None:
            if like is None:
                raise NotFound(f"patient {ref.patient_id} not found")
            found = Patient(
                patient_id=ref.patient_id,
                issuer=ref.issuer,
                name=like.name,
                name_folded=like.name_folded,
                birth_date=like.birth_date,
                sex=like.sex,
            )
            session.add(found)
            session.flush()
        return found

    def _new_study(self, session: Session, source: Study, ref: PatientRef) -> Study:
        owner = self._patient(session, ref)
        now = self.clock()
        study = Study(study_uid=generate_uid(), patient_pk=owner.pk, created_at=now, updated_at=now)
        for column in STUDY_COLUMNS:
            setattr(study, column, getattr(source, column))
        session.add(study)
        session.flush()
        return study

    @staticmethod
    def _snapshot(session: Session, study: Study) -> dict[str, str]:
        owner = session.get(Patient, study.patient_pk)
        assert owner is not None
        found = {column: str(getattr(study, column) or "") for column in STUDY_COLUMNS}
        found.update(
            patient_id=owner.patient_id,
            issuer=owner.issuer,
            name=owner.name,
            birth_date=owner.birth_date,
            sex=owner.sex,
            study_uid=study.study_uid,
        )
        return found

    def _recreate(self, session: Session, snapshot: dict[str, str]) -> Study:
        like = Patient(
            name=snapshot["name"],
            name_folded=fold(snapshot["name"]),
            birth_date=snapshot["birth_date"],
            sex=snapshot["sex"],
        )
        owner = self._patient(session, PatientRef(snapshot["patient_id"], snapshot["issuer"]), like)
        now = self.clock()
        study = Study(
            study_uid=snapshot["study_uid"], patient_pk=owner.pk, created_at=now, updated_at=now
        )
        for column in STUDY_COLUMNS:
            setattr(study, column, snapshot.get(column, ""))
        session.add(study)
        session.flush()
        return study

    def _attach(
        self,
        session: Session,
        principal: Principal,
        series: Series,
        source: Study,
        target: Study,
        reason: str,
    ) -> None:
        """The series joins ``target``; its instances present the target's identity."""
        series.study_pk = target.pk
        session.flush()
        attributes = _present(session, target.pk)
        stamp = _stamp(attributes)
        state = session.get(CorrectedStudy, target.study_uid)
        now = self.clock()
        version = self._version(session, target.study_uid)
        if state is None:
            session.add(
                CorrectedStudy(study_uid=target.study_uid, attributes=stamp, version=version)
            )
        else:
            state.attributes, state.version = stamp, version
        rows = session.execute(
            select(Instance.pk, Instance.dicom_json).where(Instance.series_pk == series.pk)
        ).all()
        for pk, text in rows:
            session.execute(
                update(Instance)
                .where(Instance.pk == pk)
                .values(dicom_json=corrected_json(text, attributes))
            )
        who = principal.name[:128]
        for uid, number, change in (
            (target.study_uid, version, {"series_added": {"old": "", "new": series.series_uid}}),
            (
                source.study_uid,
                self._version(session, source.study_uid),
                {"series_removed": {"old": series.series_uid, "new": ""}},
            ),
        ):
            session.add(
                CorrectionVersion(
                    study_uid=uid,
                    version=number,
                    changes=json.dumps(change),
                    reason=reason,
                    corrected_by=who,
                    corrected_at=now,
                )
            )
        session.flush()
        if not session.scalar(select(exists().where(Series.study_pk == source.pk))):
            self._drop_study(session, source)

    @staticmethod
    def _version(session: Session, study_uid: str) -> int:
        last = session.scalar(
            select(func.max(CorrectionVersion.version)).where(
                CorrectionVersion.study_uid == study_uid
            )
        )
        return (last or 0) + 1

    @staticmethod
    def _drop_study(session: Session, study: Study) -> None:
        patient_pk = study.patient_pk
        session.execute(delete(StudyStable).where(StudyStable.study_pk == study.pk))
        session.execute(delete(CorrectedStudy).where(CorrectedStudy.study_uid == study.study_uid))
        session.execute(delete(Study).where(Study.pk == study.pk))
        if not session.scalar(select(exists().where(Study.patient_pk == patient_pk))):
            session.execute(
                delete(PatientIdentifier).where(PatientIdentifier.patient_pk == patient_pk)
            )
            session.execute(delete(Patient).where(Patient.pk == patient_pk))

    def _record(
        self,
        principal: Principal,
        source_uid: str,
        target_uid: str,
        series_uid: str,
        snapshot: dict[str, str],
        reason: str,
    ) -> MoveView:
        with self.sessions.begin() as session:
            row = PatientMove(
                kind="series",
                source_id=source_uid,
                source_issuer="",
                target_id=target_uid,
                target_issuer="",
                source=json.dumps(snapshot, ensure_ascii=False),
                studies=json.dumps([series_uid]),
                added="[]",
                reason=reason,
                moved_by=principal.name[:128],
                moved_at=self.clock(),
                undone_by="",
                undone_at=None,
            )
            session.add(row)
            session.flush()
            return _view(row)


assert "StudyInstanceUID" in CORRECTABLE  # the served copies carry the target study's UID
