"""Deleting studies, series and instances; legal holds; purging what is due.

A delete is soft and immediate: in one transaction the instance rows (and the
series, study and patient rows left empty) leave the imaging tables and a
:class:`~pacs.index.lifecycle_models.Deletion` records who deleted what, whose
it was, when and why, with the blob of every instance. From that commit on no
door can find or retrieve the object (QIDO, WADO, C-FIND, C-MOVE, C-GET and the
viewer all read the imaging tables), while its bytes stay in the store. After
``delete_purge_after_hours`` the purge removes those blobs and the blob list;
the deletion record itself stays, as the history of what happened.

Why rows move out instead of carrying a "deleted" flag: every query of every
door would have to remember the flag, and one that forgot would show deleted
patient data. Removing the rows makes forgetting impossible.

Three guards keep a purge from losing data: a blob that a live instance row
references again (the same object was sent again after the delete) is left in
place; an ingest of a key awaiting purge first takes it off the blob list,
waiting for a purge that is removing it (:func:`revive_blob`), so a purge never
deletes bytes an ingest wrote; and the reconciler and the index rebuild skip
blobs awaiting purge, so a deleted study is not adopted back from its own bytes.

A study under a legal hold cannot be deleted, at any level, until an
administrator releases the hold. Every delete, refusal, hold and purge is
audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.archive.errors import LegalHoldActive, NotFound
from pacs.audit import AuditTrail
from pacs.auth.principal import Kind, Principal, Role
from pacs.index.changes import record_changes
from pacs.index.jobs_models import StudyStable
from pacs.index.lifecycle_models import (
    CorrectedStudy,
    DeletedBlob,
    Deletion,
    InstanceOriginal,
    LegalHold,
)
from pacs.index.models import Instance, Patient, PatientIdentifier, Series, Study
from storage import BlobStore

log = logging.getLogger(__name__)

# Who the audit trail names for purges: the archive itself, acting on a past decision.
PURGER = Principal(Kind.USER, "pacs-purge", Role.ADMIN)
MAX_REASON = 1024

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for what we stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class DeletionView:
    """A delete as the archive recorded it."""

    id: int
    level: str  # study, series, instance
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    patient_id: str
    instances: int
    reason: str
    deleted_by: str
    deleted_at: datetime
    purge_after: datetime
    purged_at: datetime | None
    rejection_code: str = ""  # an IOCM rejection's code (pacs.archive.rejection)
    rejection_note_uid: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level,
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "patient_id": self.patient_id,
            "instances": self.instances,
            "reason": self.reason,
            "deleted_by": self.deleted_by,
            "deleted_at": self.deleted_at.isoformat(),
            "purge_after": self.purge_after.isoformat(),
            "purged_at": self.purged_at.isoformat() if self.purged_at else None,
            "rejection_code": self.rejection_code or None,
            "rejection_note_uid": self.rejection_note_uid or None,
        }


@dataclass(frozen=True)
class HoldView:
    study_uid: str
    reason: str
    held_by: str
    held_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "reason": self.reason,
            "held_by": self.held_by,
            "held_at": self.held_at.isoformat(),
        }


class _Purged(Enum):
    """What became of one blob of a deletion being purged."""

    REMOVED = "removed"
    KEPT = "kept"  # a live instance references it again
    GONE = "gone"  # not in the blob list any more (another purger, or sent again)
    HELD = "held"  # the study is under a legal hold


class _HeldSince(Exception):
    """A legal hold was set on the study while its deletion was being purged."""


@dataclass
class PurgeReport:
    deletions: int = 0  # deletion records purged
    blobs_removed: int = 0
    blobs_kept: int = 0  # referenced again by a live instance (sent again after the delete)


def _deletion_view(row: Deletion) -> DeletionView:
    return DeletionView(
        id=row.pk,
        level=row.level,
        study_uid=row.study_uid,
        series_uid=row.series_uid,
        sop_instance_uid=row.sop_instance_uid,
        patient_id=row.patient_id,
        instances=row.instances,
        reason=row.reason,
        deleted_by=row.deleted_by,
        deleted_at=_aware(row.deleted_at) or row.deleted_at,
        purge_after=_aware(row.purge_after) or row.purge_after,
        purged_at=_aware(row.purged_at),
        rejection_code=row.rejection_code or "",
        rejection_note_uid=row.rejection_note_uid or "",
    )


def _take_originals(session: Session, sop_uids: list[str]) -> list[Any]:
    """Remove the originals of these instances from the kept ones; (uid, key, size) of each."""
    taken: list[Any] = []
    for start in range(0, len(sop_uids), 5000):  # bound the statement's parameters
        chunk = sop_uids[start : start + 5000]
        taken += session.execute(
            delete(InstanceOriginal)
            .where(InstanceOriginal.sop_instance_uid.in_(chunk))
            .returning(
                InstanceOriginal.sop_instance_uid, InstanceOriginal.blob_key, InstanceOriginal.size
            )
        ).all()
    return taken


def revive_blob(sessions: sessionmaker[Session], key: str) -> None:
    """Take ``key`` off the blob lists of deletions: the same object is being stored again.

    Called by ingest before it writes the bytes of a key awaiting purge. A purge
    that has claimed the key holds its row until the bytes are gone, so this waits
    for it and the ingest writes afterwards; once this commits no purge will touch
    the key. (Checked after writing, the purge could delete the bytes between the
    ingest's write and its index commit: an acknowledged instance without a blob.)
    If the ingest then fails, the bytes stay as an orphan the reconciler adopts.
    """
    with sessions.begin() as session:
        session.execute(delete(DeletedBlob).where(DeletedBlob.blob_key == key))


class Lifecycle:
    """Delete, hold and purge, over the index and the store of one archive."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        audit: AuditTrail,
        *,
        purge_after: timedelta,
        clock: Clock = _utcnow,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.audit = audit
        self.purge_after = purge_after
        self.clock = clock

    # -- delete ------------------------------------------------------------------------

    def delete(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str | None = None,
        sop_instance_uid: str | None = None,
        *,
        reason: str,
        rejection_code: str = "",
        rejection_note_uid: str = "",
    ) -> DeletionView:
        """Soft-delete a study, one of its series, or one instance; see the module docstring.

        ``rejection_*``: the IOCM code and note of a rejection, kept on the record."""
        level = "instance" if sop_instance_uid else "series" if series_uid else "study"
        reason = reason.strip()[:MAX_REASON]
        now = self.clock()
        try:
            view = self._delete(
                principal, level, study_uid, series_uid, sop_instance_uid, reason, now
            )
            if rejection_code:
                view = self._mark(view, rejection_code, rejection_note_uid)
        except LegalHoldActive as exc:
            self.audit.record(
                principal,
                "delete",
                "failure: legal hold",
                study_uid=study_uid,
                detail=f"{level} {series_uid or ''} {sop_instance_uid or ''}; {exc}".strip(),
            )
            raise
        self.audit.record(
            principal,
            "delete",
            patient_id=view.patient_id,
            study_uid=study_uid,
            detail=(
                f"level={level} series={view.series_uid} instance={view.sop_instance_uid} "
                f"instances={view.instances} purge_after={view.purge_after.isoformat()} "
                f"reason={reason}"
            ),
        )
        return view

    def _delete(
        self,
        principal: Principal,
        level: str,
        study_uid: str,
        series_uid: str | None,
        sop_instance_uid: str | None,
        reason: str,
        now: datetime,
    ) -> DeletionView:
        with self.sessions.begin() as session:
            study = session.execute(
                select(Study.pk, Study.patient_pk, Patient.patient_id, Patient.name)
                .join(Patient, Study.patient_pk == Patient.pk)
                .where(Study.study_uid == study_uid)
                .with_for_update(of=Study)  # serializes with the writer's touch of the study
            ).one_or_none()
            if study is None:
                raise NotFound(f"study {study_uid} not found")
            hold = session.get(LegalHold, study_uid)
            if hold is not None:
                raise LegalHoldActive(f"study {study_uid} is under a legal hold: {hold.reason}")

            series_query = select(Series.pk).where(Series.study_pk == study.pk)
            if series_uid is not None:
                series_query = series_query.where(Series.series_uid == series_uid)
            series_pks = list(session.scalars(series_query))
            if series_uid is not None and not series_pks:
                raise NotFound(f"series {series_uid} not found in study {study_uid}")

            removal = delete(Instance).where(Instance.series_pk.in_(series_pks))
            if sop_instance_uid is not None:
                removal = removal.where(Instance.sop_instance_uid == sop_instance_uid)
            removed: list[Any] = list(
                session.execute(
                    removal.returning(Instance.sop_instance_uid, Instance.blob_key, Instance.size)
                ).all()
            )
            # The bytes as received, kept beside a corrected copy, go with the instance.
            removed += _take_originals(session, [uid for uid, _, _ in removed])
            if sop_instance_uid is not None and not removed:
                raise NotFound(
                    f"instance {sop_instance_uid} not found in {series_uid or study_uid}"
                )

            record = Deletion(
                level=level,
                study_uid=study_uid,
                series_uid=series_uid or "",
                sop_instance_uid=sop_instance_uid or "",
                patient_id=study.patient_id,
                patient_name=study.name,
                instances=len({uid for uid, _, _ in removed}),
                reason=reason,
                deleted_by=principal.name[:128],
                deleted_at=now,
                purge_after=now + self.purge_after,
            )
            session.add(record)
            session.flush()
            if removed:
                session.execute(
                    insert(DeletedBlob),
                    [
                        {
                            "deletion_pk": record.pk,
                            "sop_instance_uid": uid,
                            "blob_key": key,
                            "size": size,
                        }
                        for uid, key, size in removed
                    ],
                )
            self._drop_empty_parents(session, series_pks, study.pk, study.patient_pk, study_uid)
            # The change feed tells integrations that polled the study that it changed;
            # last in the transaction, so numbers commit in order (pacs.index.changes).
            session.flush()
            record_changes(
                session,
                [
                    {
                        "kind": f"deleted-{level}",
                        "study_uid": study_uid,
                        "series_uid": series_uid or "",
                        "at": now,
                    }
                ],
            )
            return _deletion_view(record)

    def _mark(self, view: DeletionView, code: str, note_uid: str) -> DeletionView:
        with self.sessions.begin() as session:
            row = session.get(Deletion, view.id)
            assert row is not None
            row.rejection_code, row.rejection_note_uid = code[:16], note_uid[:64]
            return _deletion_view(row)

    @staticmethod
    def _drop_empty_parents(
        session: Session, series_pks: list[int], study_pk: int, patient_pk: int, study_uid: str
    ) -> None:
        """Remove the series, study and patient rows the delete left without children."""
        if series_pks:
            session.execute(
                delete(Series).where(
                    Series.pk.in_(series_pks),
                    ~exists(select(Instance.pk).where(Instance.series_pk == Series.pk)),
                )
            )
        if session.scalar(select(exists().where(Series.study_pk == study_pk))):
            return
        session.execute(delete(StudyStable).where(StudyStable.study_pk == study_pk))
        session.execute(delete(CorrectedStudy).where(CorrectedStudy.study_uid == study_uid))
        session.execute(delete(Study).where(Study.pk == study_pk))
        if session.scalar(select(exists().where(Study.patient_pk == patient_pk))):
            return
        session.execute(delete(PatientIdentifier).where(PatientIdentifier.patient_pk == patient_pk))
        session.execute(delete(Patient).where(Patient.pk == patient_pk))

    def deletions(self, study_uid: str | None = None, limit: int = 100) -> list[DeletionView]:
        """Recorded deletes, newest first (optionally of one study)."""
        query = select(Deletion).order_by(Deletion.pk.desc()).limit(limit)
        if study_uid is not None:
            query = query.where(Deletion.study_uid == study_uid)
        with self.sessions() as session:
            return [_deletion_view(row) for row in session.scalars(query)]

    # -- purge -------------------------------------------------------------------------

    def awaiting_purge(self) -> set[str]:
        """Blob keys of deleted instances whose purge is still to come."""
        with self.sessions() as session:
            return set(session.scalars(select(DeletedBlob.blob_key)))

    def kept_originals(self) -> set[str]:
        """Blob keys of objects as received, kept while a corrected copy is served."""
        with self.sessions() as session:
            return set(session.scalars(select(InstanceOriginal.blob_key)))

    def due(self, now: datetime | None = None) -> list[int]:
        """Ids of the deletions whose purge time has come (none of a study under a legal hold:
        a hold set after a delete or rejection keeps the bytes until it is released)."""
        now = now or self.clock()
        held = select(LegalHold.study_uid).where(LegalHold.study_uid == Deletion.study_uid)
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Deletion.pk)
                    .where(
                        Deletion.purged_at.is_(None),
                        Deletion.purge_after <= now,
                        ~held.exists(),
                    )
                    .order_by(Deletion.pk)
                )
            )

    def purge(self, deletion_id: int, report: PurgeReport | None = None) -> PurgeReport:
        """Remove the blobs of one deletion and its blob list; idempotent (a job may run twice).

        Each blob goes in its own transaction, which claims its row of the blob list
        and deletes the bytes before it commits (see :meth:`_purge_blob`). So two
        purgers of one deletion never both count or audit it, a legal hold set while
        the purge runs keeps every blob not yet removed, and an object sent again
        meanwhile keeps its bytes (see :func:`revive_blob`).
        """
        report = report if report is not None else PurgeReport()
        with self.sessions() as session:
            record = session.get(Deletion, deletion_id)
            if record is None or record.purged_at is not None:
                return report
            study_uid, patient_id = record.study_uid, record.patient_id
            keys = set(
                session.scalars(
                    select(DeletedBlob.blob_key).where(DeletedBlob.deletion_pk == deletion_id)
                )
            )
        removed = 0
        for key in sorted(keys):
            outcome = self._purge_blob(deletion_id, study_uid, key)
            if outcome is _Purged.HELD:
                return report  # held since: the rest is kept until the hold is released
            if outcome is _Purged.KEPT:
                report.blobs_kept += 1
            elif outcome is _Purged.REMOVED:
                report.blobs_removed += 1
                removed += 1
        with self.sessions.begin() as session:
            if session.scalar(select(exists().where(DeletedBlob.deletion_pk == deletion_id))):
                return report  # another purger is still at work on it
            marked = session.execute(
                update(Deletion)
                .where(Deletion.pk == deletion_id, Deletion.purged_at.is_(None))
                .values(purged_at=self.clock())
                .returning(Deletion.pk)
            ).first()
        if marked is None:
            return report  # another purger finished it, and says so
        report.deletions += 1
        self.audit.record(
            PURGER,
            "purge",
            patient_id=patient_id,
            study_uid=study_uid,
            detail=f"deletion={deletion_id} blobs={len(keys)} removed here={removed}",
        )
        return report

    def _purge_blob(self, deletion_id: int, study_uid: str, key: str) -> _Purged:
        """Claim one blob of a deletion and remove its bytes, all in one transaction.

        The claim (the blob list's row, deleted first: SQLite's write lock, a row lock
        on PostgreSQL) is held until the bytes are gone: an ingest of the same object
        waits for it in :func:`revive_blob` before it writes, and a hold waits for it
        in :meth:`hold`. A store failure rolls the claim back (tried again later).
        """
        try:
            return self._claim_and_remove(deletion_id, study_uid, key)
        except _HeldSince:
            return _Purged.HELD  # rolled back: the claim is undone

    def _claim_and_remove(self, deletion_id: int, study_uid: str, key: str) -> _Purged:
        with self.sessions.begin() as session:
            claimed = session.execute(
                delete(DeletedBlob)
                .where(DeletedBlob.deletion_pk == deletion_id, DeletedBlob.blob_key == key)
                .returning(DeletedBlob.pk)
            ).all()
            if not claimed:
                return _Purged.GONE  # another purger took it, or the object came back
            session.execute(select(Deletion.pk).where(Deletion.pk == deletion_id).with_for_update())
            if session.get(LegalHold, study_uid) is not None:
                raise _HeldSince(study_uid)
            if session.scalar(select(exists().where(Instance.blob_key == key))):
                return _Purged.KEPT  # referenced by a live instance again
            self.store.delete(key)
            return _Purged.REMOVED

    def purge_due(self, now: datetime | None = None) -> PurgeReport:
        """Purge every deletion whose time has come (``now``: the clock, for tests)."""
        report = PurgeReport()
        for deletion_id in self.due(now):
            self.purge(deletion_id, report)
        return report

    # -- legal holds -------------------------------------------------------------------

    def hold(self, principal: Principal, study_uid: str, reason: str) -> HoldView:
        """Put a study under a legal hold (or update the hold's reason); NotFound if unknown."""
        reason = reason.strip()[:MAX_REASON]
        now = self.clock()
        with self.sessions.begin() as session:
            study = session.execute(
                select(Study.pk, Patient.patient_id)
                .join(Patient, Study.patient_pk == Patient.pk)
                .where(Study.study_uid == study_uid)
            ).one_or_none()
            if study is None:
                raise NotFound(f"study {study_uid} not found")
            # A purge of this study's deletions holds these rows while it removes a blob:
            # the hold waits for that blob, and keeps every later one.
            session.execute(
                select(Deletion.pk)
                .where(Deletion.study_uid == study_uid, Deletion.purged_at.is_(None))
                .with_for_update()
            )
            row = session.get(LegalHold, study_uid)
            if row is None:
                row = LegalHold(study_uid=study_uid)
                session.add(row)
            row.reason, row.held_by, row.held_at = reason, principal.name[:128], now
            view = HoldView(study_uid, reason, row.held_by, now)
        self.audit.record(
            principal,
            "legal-hold",
            patient_id=study.patient_id,
            study_uid=study_uid,
            detail=f"set; reason={reason}",
        )
        return view

    def release(self, principal: Principal, study_uid: str, reason: str = "") -> None:
        """Release a study's legal hold; NotFound when it has none."""
        with self.sessions.begin() as session:
            row = session.get(LegalHold, study_uid)
            if row is None:
                raise NotFound(f"study {study_uid} has no legal hold")
            session.delete(row)
        self.audit.record(
            principal,
            "legal-hold",
            study_uid=study_uid,
            detail=f"released; reason={reason.strip()[:MAX_REASON]}",
        )

    def hold_of(self, study_uid: str) -> HoldView | None:
        with self.sessions() as session:
            row = session.get(LegalHold, study_uid)
            if row is None:
                return None
            return HoldView(
                row.study_uid, row.reason, row.held_by, _aware(row.held_at) or row.held_at
            )
