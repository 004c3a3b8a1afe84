"""Patient merge and split: studies moved between patient IDs as audited, undoable corrections.

A merge moves every study of one patient (the source, e.g. a duplicate record
opened at the front desk) to another (the target) by correcting each study's
PatientID through :class:`~pacs.archive.corrections.Corrections`: the index,
the stored metadata and the served objects present the target's identity, the
objects as received stay, and each moved study gets a version. The source's ID
then becomes an *alias* of the target: a row in ``patient_identifier`` (type
``MERGED``), the table that already holds OtherPatientIDs. The one matching
engine (:func:`pacs.query.matching.patient_id_condition`) looks there, so
PatientID=old finds the moved studies through QIDO and C-FIND alike.

A split moves chosen studies to another patient ID (the target is created when
it does not exist) and adds no alias: those studies were never that patient's.

Each move is recorded (:class:`~pacs.index.lifecycle_models.PatientMove`) with
the source's demographics and the identifiers the target gained, so that an
undo moves the studies back, restores the source's name, birth date and sex
when its record has to be made again, and removes the alias. Everything is
audited (``merge``, ``split``, ``unmerge`` beside each study's ``correct``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.corrections import MAX_REASON, Corrections, validate
from pacs.archive.errors import InvalidCorrection, NotFound
from pacs.audit import AuditTrail
from pacs.auth.principal import Principal
from pacs.index.lifecycle_models import PatientMove
from pacs.index.models import Patient, PatientIdentifier, Study

ALIAS_TYPE = "MERGED"  # type_of_id of an alias row: a former ID merged into this patient
DEMOGRAPHICS = {"name": "PatientName", "birth_date": "PatientBirthDate", "sex": "PatientSex"}


@dataclass(frozen=True)
class PatientRef:
    """A patient as the index names it: PatientID and its issuer."""

    patient_id: str
    issuer: str = ""


@dataclass(frozen=True)
class MoveView:
    """One recorded merge or split."""

    id: int
    kind: str
    source: PatientRef
    target: PatientRef
    studies: list[str]
    reason: str
    moved_by: str
    moved_at: datetime
    undone_by: str
    undone_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "source": {"patient_id": self.source.patient_id, "issuer": self.source.issuer},
            "target": {"patient_id": self.target.patient_id, "issuer": self.target.issuer},
            "studies": self.studies,
            "reason": self.reason,
            "moved_by": self.moved_by,
            "moved_at": self.moved_at.isoformat(),
            "undone_by": self.undone_by or None,
            "undone_at": self.undone_at.isoformat() if self.undone_at else None,
        }


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _view(row: PatientMove) -> MoveView:
    return MoveView(
        row.pk,
        row.kind,
        PatientRef(row.source_id, row.source_issuer),
        PatientRef(row.target_id, row.target_issuer),
        json.loads(row.studies),
        row.reason,
        row.moved_by,
        _aware(row.moved_at) or row.moved_at,
        row.undone_by,
        _aware(row.undone_at),
    )


def _patient(session: Session, ref: PatientRef) -> Patient | None:
    return session.scalar(
        select(Patient).where(Patient.patient_id == ref.patient_id, Patient.issuer == ref.issuer)
    )


class PatientMoves:
    """Merge, split and undo over one archive's corrections."""

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
        # Undoing a series move (pacs.archive.series), set by the facade.
        self.series_undo: Callable[[Principal, PatientMove, str], None] | None = None

    def merge(
        self,
        principal: Principal,
        source: PatientRef,
        target: PatientRef,
        reason: str,
        values: dict[str, str] | None = None,
    ) -> MoveView:
        """Move every study of ``source`` to ``target``; ``source``'s ID stays findable.

        ``values``: demographics to give the target too (an HL7 merge carries
        the HIS's). Raises NotFound (no such source patient) and
        InvalidCorrection (same patient, different issuers, no reason).
        """
        reason = self._check(source, target, reason)
        with self.sessions() as session:
            row = _patient(session, source)
            if row is None:
                raise NotFound(f"patient {source.patient_id} not found")
            studies = list(
                session.scalars(select(Study.study_uid).where(Study.patient_pk == row.pk))
            )
            snapshot = {column: getattr(row, column) for column in DEMOGRAPHICS}
            carried = [
                (i.value, i.issuer, i.type_of_id)
                for i in session.scalars(
                    select(PatientIdentifier).where(PatientIdentifier.patient_pk == row.pk)
                )
            ]
        extra = validate(values) if values else {}
        self._move(principal, studies, target, extra, reason)
        added = self._add_identifiers(
            target, [(source.patient_id, source.issuer, ALIAS_TYPE), *carried]
        )
        view = self._record(principal, "merge", source, target, snapshot, studies, added, reason)
        self.audit.record(
            principal,
            "merge",
            patient_id=target.patient_id,
            detail=json.dumps(view.as_json(), ensure_ascii=False),
        )
        return view

    def split(
        self,
        principal: Principal,
        source: PatientRef,
        study_uids: list[str],
        target: PatientRef,
        reason: str,
        values: dict[str, str] | None = None,
    ) -> MoveView:
        """Move ``study_uids`` of ``source`` to ``target`` (created with ``values`` when new)."""
        reason = self._check(source, target, reason)
        if not study_uids:
            raise InvalidCorrection("no study to move")
        with self.sessions() as session:
            row = _patient(session, source)
            if row is None:
                raise NotFound(f"patient {source.patient_id} not found")
            own = set(session.scalars(select(Study.study_uid).where(Study.patient_pk == row.pk)))
            snapshot = {column: getattr(row, column) for column in DEMOGRAPHICS}
            exists = _patient(session, target) is not None
        strangers = [uid for uid in study_uids if uid not in own]
        if strangers:
            raise NotFound(f"studies not of patient {source.patient_id}: {', '.join(strangers)}")
        # A new target takes the given demographics; an existing one keeps its own.
        extra = validate(values) if values and not exists else {}
        self._move(principal, list(dict.fromkeys(study_uids)), target, extra, reason)
        view = self._record(
            principal, "split", source, target, snapshot, list(study_uids), [], reason
        )
        self.audit.record(
            principal,
            "split",
            patient_id=source.patient_id,
            detail=json.dumps(view.as_json(), ensure_ascii=False),
        )
        return view

    def undo(self, principal: Principal, move_id: int, reason: str) -> MoveView:
        """Move a merge's or split's studies back and drop what it added; NotFound, or
        InvalidCorrection when already undone."""
        reason = reason.strip()[:MAX_REASON]
        if not reason:
            raise InvalidCorrection("a reason is required")
        with self.sessions() as session:
            row = session.get(PatientMove, move_id)
            if row is None:
                raise NotFound(f"no patient merge or split {move_id}")
            if row.undone_at is not None:
                raise InvalidCorrection(f"{row.kind} {move_id} was already undone")
            session.expunge(row)
        if row.kind == "series" and self.series_undo is not None:
            self.series_undo(principal, row, reason)
        else:
            self._undo_patients(principal, row, reason)
        with self.sessions.begin() as session:
            stored = session.get(PatientMove, move_id)
            assert stored is not None
            stored.undone_by, stored.undone_at = principal.name[:128], self.clock()
            view = _view(stored)
        self.audit.record(
            principal,
            {"merge": "unmerge", "split": "unsplit"}.get(view.kind, "unmove-series"),
            patient_id=view.source.patient_id,
            detail=json.dumps({**view.as_json(), "undo_reason": reason}, ensure_ascii=False),
        )
        return view

    def _undo_patients(self, principal: Principal, row: PatientMove, reason: str) -> None:
        move_id = row.pk
        with self.sessions() as session:
            view = _view(row)
            snapshot = json.loads(row.source)
            added = [tuple(item) for item in json.loads(row.added)]
            target = _patient(session, view.target)
            still = set()
            if target is not None:
                still = set(
                    session.scalars(select(Study.study_uid).where(Study.patient_pk == target.pk))
                )
            source_exists = _patient(session, view.source) is not None
        self._remove_identifiers(view.target, added)
        restore = {} if source_exists else {DEMOGRAPHICS[c]: v for c, v in snapshot.items() if v}
        back = [uid for uid in view.studies if uid in still]
        self._move(principal, back, view.source, restore, f"undo {view.kind} {move_id}: {reason}")
        # The identifiers the source carried over (citizen ID ...) go back with it.
        self._add_identifiers(view.source, [i for i in added if i[2] != ALIAS_TYPE])

    def moves(self, patient_id: str | None = None, limit: int = 100) -> list[MoveView]:
        """Recorded merges and splits, newest first (optionally those naming ``patient_id``)."""
        query = select(PatientMove).order_by(PatientMove.pk.desc()).limit(limit)
        if patient_id is not None:
            query = query.where(
                (PatientMove.source_id == patient_id) | (PatientMove.target_id == patient_id)
            )
        with self.sessions() as session:
            return [_view(row) for row in session.scalars(query)]

    # -- steps --------------------------------------------------------------------------------

    @staticmethod
    def _check(source: PatientRef, target: PatientRef, reason: str) -> str:
        reason = reason.strip()[:MAX_REASON]
        if not reason:
            raise InvalidCorrection("a reason is required")
        validate({"PatientID": target.patient_id})
        if source == target:
            raise InvalidCorrection("the source and the target are the same patient")
        if source.issuer != target.issuer:
            raise InvalidCorrection(
                "moving studies between issuers of patient IDs is not supported"
            )
        return reason

    def _move(
        self,
        principal: Principal,
        studies: list[str],
        target: PatientRef,
        extra: dict[str, str],
        reason: str,
    ) -> None:
        """Correct each study's PatientID to the target's; ``extra`` goes with the first only
        (patient attributes are the patient's, shared by the studies that follow)."""
        for n, study_uid in enumerate(studies):
            values = {"PatientID": target.patient_id, **(extra if n == 0 else {})}
            self.corrections.correct(principal, study_uid, values, reason)
        if not studies and extra:
            with self.sessions() as session:
                row = _patient(session, target)
                first = (
                    session.scalar(select(Study.study_uid).where(Study.patient_pk == row.pk))
                    if row is not None
                    else None
                )
            if first is not None:
                self.corrections.correct(principal, first, extra, reason)

    def _add_identifiers(
        self, target: PatientRef, identifiers: list[tuple[str, str, str]]
    ) -> list[tuple[str, str, str]]:
        """Give the target these identifiers (those it lacks); the ones added."""
        added = []
        with self.sessions.begin() as session:
            row = _patient(session, target)
            if row is None:
                return []
            have = {
                (i.value, i.issuer)
                for i in session.scalars(
                    select(PatientIdentifier).where(PatientIdentifier.patient_pk == row.pk)
                )
            }
            for value, issuer, kind in identifiers:
                if (value, issuer) in have or (value, issuer) == (row.patient_id, row.issuer):
                    continue
                session.add(
                    PatientIdentifier(
                        patient_pk=row.pk, value=value, issuer=issuer, type_of_id=kind[:16]
                    )
                )
                have.add((value, issuer))
                added.append((value, issuer, kind))
        return added

    def _remove_identifiers(self, target: PatientRef, added: list[Any]) -> None:
        with self.sessions.begin() as session:
            row = _patient(session, target)
            if row is None:
                return
            for value, issuer, _kind in added:
                session.execute(
                    delete(PatientIdentifier).where(
                        PatientIdentifier.patient_pk == row.pk,
                        PatientIdentifier.value == value,
                        PatientIdentifier.issuer == issuer,
                    )
                )

    def _record(
        self,
        principal: Principal,
        kind: str,
        source: PatientRef,
        target: PatientRef,
        snapshot: dict[str, str],
        studies: list[str],
        added: list[tuple[str, str, str]],
        reason: str,
    ) -> MoveView:
        with self.sessions.begin() as session:
            row = PatientMove(
                kind=kind,
                source_id=source.patient_id,
                source_issuer=source.issuer,
                target_id=target.patient_id,
                target_issuer=target.issuer,
                source=json.dumps(snapshot, ensure_ascii=False),
                studies=json.dumps(studies),
                added=json.dumps(added, ensure_ascii=False),
                reason=reason,
                moved_by=principal.name[:128],
                moved_at=self.clock(),
                undone_by="",
                undone_at=None,
            )
            session.add(row)
            session.flush()
            return _view(row)
