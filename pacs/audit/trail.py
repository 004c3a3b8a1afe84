"""Append-only, hash-chained audit records.

Each record's hash covers its own fields and the previous record's hash, so
editing or deleting any record breaks the chain from that point on, and
``verify`` finds it. Appends are serialized (a process lock, plus a
transaction-scoped advisory lock on PostgreSQL when several nodes share the
index, and on SQLite a transaction that takes the write lock before it reads
the last hash, for the DIMSE workers and ``pacs import`` beside ``pacs
serve``) because two records must never claim the same predecessor.

Requests never wait for that lock: :meth:`AuditTrail.record` hands the record
to :class:`pacs.audit.writer.AuditWriter`, whose thread appends records in
batches (and merges repeated WADO/QIDO accesses within a short window).
Records are numbered (``pk``) in the order they are appended, which for a
merged record is the end of its window; ``at`` is when the access began.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit.checkpoint import Checkpoint, CheckpointError
from pacs.audit.dicom_xml import to_xml
from pacs.audit.filters import AuditFilter
from pacs.audit.models import AuditEvent, AuditPatient
from pacs.audit.syslog import SyslogSender
from pacs.audit.writer import AuditWriter, PendingRecord
from pacs.auth.principal import Principal
from pacs.index.models import Patient, Study

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_ADVISORY_LOCK_KEY = 0x5041_4353  # "PACS"


@dataclass(frozen=True)
class ChainBreak:
    """The first record whose hash does not follow from its predecessor."""

    pk: int
    reason: str


@dataclass(frozen=True)
class TrailSummary:
    records: int
    newest: int | None  # the newest record's number
    checkpoint_pk: int | None  # the record the signed checkpoint names
    checkpoint_at: str | None


def _digest(prev_hash: str, fields: dict[str, str]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


AUDIT_FIELDS = (
    "at",
    "actor_kind",
    "actor",
    "role",
    "address",
    "action",
    "outcome",
    "patient_id",
    "study_uid",
    "detail",
)


def event_fields(event: AuditEvent) -> dict[str, str]:
    """A record's content in canonical form: what the hash covers and what exports show."""
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    return {
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_kind": event.actor_kind,
        "actor": event.actor,
        "role": event.role,
        "address": event.address,
        "action": event.action,
        "outcome": event.outcome,
        "patient_id": event.patient_id,
        "study_uid": event.study_uid,
        "detail": event.detail,
    }


class AuditTrail:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        syslog: SyslogSender | None = None,
        source_id: str = "PACS",
        spill_path: Path | None = None,
        window: float = 5.0,
        queue_size: int = 10_000,
        block_seconds: float = 1.0,
        close_seconds: float = 10.0,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.sessions = sessions
        self.syslog = syslog
        self.checkpoint = checkpoint
        self._tampered = ""
        self._checkpoint_error = ""
        self.source_id = source_id
        self._lock = threading.Lock()
        self._writer = AuditWriter(
            self._append,
            spill_path=spill_path,
            window=window,
            queue_size=queue_size,
            block_seconds=block_seconds,
            close_seconds=close_seconds,
        )

    def record(
        self,
        principal: Principal,
        action: str,
        outcome: str = "success",
        *,
        patient_id: str | None = None,
        study_uid: str | None = None,
        detail: str = "",
        patients: Iterable[str] = (),
    ) -> None:
        """Queue one record (never blocks on the database, never raises).

        ``patients`` are the patients a search returned, so that the
        per-patient access report finds the search too.
        """
        self._writer.submit(
            PendingRecord(
                at=datetime.now(UTC),
                actor_kind=str(principal.kind),
                actor=principal.name[:128],
                role=str(principal.role),
                address=principal.address[:64],
                action=action[:32],
                outcome=outcome[:256],
                patient_id=(patient_id or "")[:64],
                study_uid=(study_uid or "")[:64],
                details=[detail] if detail else [],
                patients={p[:64] for p in patients if p},
            )
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Write every record queued so far; ``False`` when the database would not take them."""
        return self._writer.flush(timeout)

    def queue_depth(self) -> int:
        """Records accepted but not yet in the database (for monitoring)."""
        return self._writer.depth()

    def status(self) -> str:
        """'ok', or why records are waiting, spilled or lost, or the trail was tampered with
        (reported by /health)."""
        writer = self._writer.status()
        problems = [] if writer == "ok" else [writer]
        if self._checkpoint_error:
            problems.insert(0, self._checkpoint_error)
        if self._tampered:
            problems.insert(0, f"TAMPERED: {self._tampered}")
        return "; ".join(problems) or "ok"

    def close(self) -> None:
        """Write what is pending (a normal stop loses no record), then stop forwarding."""
        self._writer.close()
        if self.syslog is not None:
            self.syslog.close()

    def _append(self, records: list[PendingRecord]) -> None:
        """Append ``records`` in order, in one transaction under the chain lock."""
        events = [
            AuditEvent(
                at=record.at,
                actor_kind=record.actor_kind,
                actor=record.actor,
                role=record.role,
                address=record.address,
                action=record.action,
                outcome=record.outcome,
                patient_id=record.patient_id,
                study_uid=record.study_uid,
                detail=record.detail,
            )
            for record in records
        ]
        with self._lock, self.sessions.begin() as session:
            dialect = session.bind.dialect.name if session.bind is not None else ""
            if dialect == "postgresql":
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            elif dialect == "sqlite":
                # A deferred transaction would read the last hash from a snapshot
                # another process may be about to extend.
                session.execute(text("BEGIN IMMEDIATE"))
            prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.pk.desc()).limit(1))
            prev = prev or GENESIS
            for event in events:
                event.prev_hash = prev
                event.hash = prev = _digest(prev, event_fields(event))
                session.add(event)
            session.flush()  # numbers the records
            for event, record in zip(events, records, strict=True):
                session.add_all(
                    AuditPatient(event_pk=event.pk, patient_id=patient)
                    for patient in sorted(record.patients)
                )
            anchored = self._anchored(session)
        if self.checkpoint is not None and anchored:
            try:
                self.checkpoint.advance(events[-1].pk, events[-1].hash)
            except CheckpointError as exc:
                self._tamper(f"checkpoint not advanced: {exc}")
            except OSError as exc:  # a permission or disk problem, not tampering
                if not self._checkpoint_error:
                    log.error("audit checkpoint %s not written: %s", self.checkpoint.path, exc)
                self._checkpoint_error = f"checkpoint {self.checkpoint.path} not written: {exc}"
            else:
                self._checkpoint_error = ""
        if self.syslog is not None:
            for event in events:
                self.syslog.send(to_xml(event, self.source_id), failure=event.outcome != "success")

    def _anchored(self, session: Session) -> bool:
        """Whether the chain being extended still holds the checkpointed record unchanged.

        If not, the tail was deleted or the chain rewritten: the checkpoint is
        left as it is (the evidence), and /health and ``verify`` say so.
        """
        if self.checkpoint is None:
            return False
        try:
            mark = self.checkpoint.read()
        except CheckpointError as exc:
            self._tamper(str(exc))
            return False
        if mark is None:
            return True
        held = session.scalar(select(AuditEvent.hash).where(AuditEvent.pk == mark.pk))
        if held != mark.hash:
            self._tamper(f"record {mark.pk} (checkpoint of {mark.at}) missing or rewritten")
            return False
        return True

    def _tamper(self, reason: str) -> None:
        if not self._tampered:
            log.critical("AUDIT TRAIL TAMPERED: %s", reason)
        self._tampered = reason

    def events(
        self,
        where: AuditFilter | None = None,
        *,
        patient_id: str | None = None,
        study_uid: str | None = None,
        before: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        """Records matching every filter given, oldest first (or newest first).

        Queued records are written first, so a reader sees every access made
        before it asked. ``before`` (a record number) pages newest-first
        listings: pass the last ``pk`` of one page to get the next.
        """
        where = where or AuditFilter()
        patient_id = patient_id if patient_id is not None else where.patient_id
        study_uid = study_uid if study_uid is not None else where.study_uid
        self.flush(timeout=2.0)
        query: Select[tuple[AuditEvent]] = select(AuditEvent)
        if where.user is not None:
            query = query.where(AuditEvent.actor == where.user)
        if patient_id is not None:
            # The per-patient access report: records naming the patient, searches that
            # returned it, and accesses to its studies recorded by study alone.
            returned = select(AuditPatient.event_pk).where(AuditPatient.patient_id == patient_id)
            studies = (
                select(Study.study_uid)
                .join(Patient, Study.patient_pk == Patient.pk)
                .where(Patient.patient_id == patient_id)
            )
            query = query.where(
                or_(
                    AuditEvent.patient_id == patient_id,
                    AuditEvent.pk.in_(returned),
                    (AuditEvent.patient_id == "") & AuditEvent.study_uid.in_(studies),
                )
            )
        if study_uid is not None:
            query = query.where(AuditEvent.study_uid == study_uid)
        if where.action is not None:
            action = where.action
            query = query.where(
                or_(AuditEvent.action == action, AuditEvent.action.startswith(action + "-"))
            )
        if where.since is not None:
            query = query.where(AuditEvent.at >= _utc(where.since))
        if where.until is not None:
            query = query.where(AuditEvent.at < _utc(where.until))
        if before is not None:
            query = query.where(AuditEvent.pk < before)
        query = query.order_by(AuditEvent.pk.desc() if newest_first else AuditEvent.pk)
        if limit is not None:
            query = query.limit(limit)
        with self.sessions() as session:
            return list(session.scalars(query))

    def summary(self) -> TrailSummary:
        """How many records, the newest one's number, and what the checkpoint names."""
        self.flush(timeout=2.0)
        with self.sessions() as session:
            records, newest = session.execute(
                select(func.count(), func.max(AuditEvent.pk)).select_from(AuditEvent)
            ).one()
        mark = None
        if self.checkpoint is not None:
            try:
                mark = self.checkpoint.read()
            except CheckpointError:
                mark = None  # verify() says why
        return TrailSummary(
            records=int(records or 0),
            newest=newest,
            checkpoint_pk=mark.pk if mark else None,
            checkpoint_at=mark.at if mark else None,
        )

    def usage(
        self, action: str, actors: Iterable[str], outcome: str = "success"
    ) -> dict[str, tuple[int, datetime]]:
        """How often, and when last, each actor did ``action`` with ``outcome``.

        How the share list counts a link's uses: each opening is one
        ``share-open`` record whose actor is the grant.
        """
        names = sorted(set(actors))
        if not names:
            return {}
        self.flush(timeout=2.0)
        found: dict[str, tuple[int, datetime]] = {}
        with self.sessions() as session:
            for start in range(0, len(names), 500):  # bound the IN list
                rows = session.execute(
                    select(AuditEvent.actor, func.count(), func.max(AuditEvent.at))
                    .where(
                        AuditEvent.action == action,
                        AuditEvent.outcome == outcome,
                        AuditEvent.actor.in_(names[start : start + 500]),
                    )
                    .group_by(AuditEvent.actor)
                )
                for actor, count, last in rows:
                    found[actor] = (int(count), _utc(last))
        return found

    def _walk(self) -> Iterator[AuditEvent]:
        with self.sessions() as session:
            yield from session.scalars(
                select(AuditEvent).order_by(AuditEvent.pk).execution_options(yield_per=1000)
            )

    def verify(self) -> ChainBreak | None:
        """``None`` when every record follows from its predecessor and the chain still
        holds the checkpointed record, else the first break found."""
        self.flush()
        expected_prev = GENESIS
        last = 0
        anchor_hash: str | None = None
        mark = None
        if self.checkpoint is not None:
            try:
                mark = self.checkpoint.read()
            except CheckpointError as exc:
                return ChainBreak(0, str(exc))
        for event in self._walk():
            if event.prev_hash != expected_prev:
                return ChainBreak(event.pk, "previous record missing or altered")
            if _digest(event.prev_hash, event_fields(event)) != event.hash:
                return ChainBreak(event.pk, "record altered")
            expected_prev = event.hash
            last = event.pk
            if mark is not None and event.pk == mark.pk:
                anchor_hash = event.hash
        if mark is None:
            if self.checkpoint is not None and last:
                return ChainBreak(last, f"no checkpoint file {self.checkpoint.path}")
            return None
        if last == 0:
            return ChainBreak(
                mark.pk, f"trail emptied: the checkpoint of {mark.at} names record {mark.pk}"
            )
        if last < mark.pk or anchor_hash is None:
            return ChainBreak(
                mark.pk, f"records deleted: the checkpoint of {mark.at} names record {mark.pk}"
            )
        if anchor_hash != mark.hash:
            return ChainBreak(
                mark.pk,
                f"chain rewritten: record {mark.pk} differs from the checkpoint of {mark.at}",
            )
        return None
