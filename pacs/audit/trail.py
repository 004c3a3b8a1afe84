"""Append-only, hash-chained audit records.

Each record's hash covers its own fields and the previous record's hash, so
editing or deleting any record breaks the chain from that point on, and
``verify`` finds it. Appends are serialized (a process lock, plus a
transaction-scoped advisory lock on PostgreSQL when several nodes share the
index, and on SQLite a transaction that takes the write lock before it reads
the last hash, for the DIMSE workers and ``pacs import`` beside ``pacs
serve``) because two records must never claim the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit.dicom_xml import to_xml
from pacs.audit.models import AuditEvent
from pacs.audit.syslog import SyslogSender
from pacs.auth.principal import Principal

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_ADVISORY_LOCK_KEY = 0x5041_4353  # "PACS"


@dataclass(frozen=True)
class ChainBreak:
    """The first record whose hash does not follow from its predecessor."""

    pk: int
    reason: str


def _digest(prev_hash: str, fields: dict[str, str]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


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
    ) -> None:
        self.sessions = sessions
        self.syslog = syslog
        self.source_id = source_id
        self._lock = threading.Lock()

    def record(
        self,
        principal: Principal,
        action: str,
        outcome: str = "success",
        *,
        patient_id: str | None = None,
        study_uid: str | None = None,
        detail: str = "",
    ) -> None:
        """Append one record. A failure to audit is logged loudly, never hidden."""
        event = AuditEvent(
            at=datetime.now(UTC),
            actor_kind=str(principal.kind),
            actor=principal.name[:128],
            role=str(principal.role),
            address=principal.address[:64],
            action=action[:32],
            outcome=outcome[:256],
            patient_id=(patient_id or "")[:64],
            study_uid=(study_uid or "")[:64],
            detail=detail,
        )
        try:
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
                prev = session.scalar(
                    select(AuditEvent.hash).order_by(AuditEvent.pk.desc()).limit(1)
                )
                event.prev_hash = prev or GENESIS
                event.hash = _digest(event.prev_hash, event_fields(event))
                session.add(event)
        except SQLAlchemyError:
            log.exception("AUDIT RECORD LOST: %s %s by %s", action, outcome, principal.name)
            raise
        if self.syslog is not None:
            self.syslog.send(to_xml(event, self.source_id), failure=outcome != "success")

    def close(self) -> None:
        if self.syslog is not None:
            self.syslog.close()

    def events(
        self,
        *,
        patient_id: str | None = None,
        study_uid: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """Records in order, optionally only those about one patient or study."""
        query = select(AuditEvent).order_by(AuditEvent.pk)
        if patient_id is not None:
            query = query.where(AuditEvent.patient_id == patient_id)
        if study_uid is not None:
            query = query.where(AuditEvent.study_uid == study_uid)
        if limit is not None:
            query = query.limit(limit)
        with self.sessions() as session:
            return list(session.scalars(query))

    def _walk(self) -> Iterator[AuditEvent]:
        with self.sessions() as session:
            yield from session.scalars(
                select(AuditEvent).order_by(AuditEvent.pk).execution_options(yield_per=1000)
            )

    def verify(self) -> ChainBreak | None:
        """``None`` when every record follows from its predecessor, else the first break."""
        expected_prev = GENESIS
        for event in self._walk():
            if event.prev_hash != expected_prev:
                return ChainBreak(event.pk, "previous record missing or altered")
            if _digest(event.prev_hash, event_fields(event)) != event.hash:
                return ChainBreak(event.pk, "record altered")
            expected_prev = event.hash
        return None
