"""Routing and sending, as the archive exposes it (``archive.routing``).

* Rules (:mod:`pacs.routing.rules`) are matched when a study becomes stable
  (a ``route-study`` job per stable study) or as each instance is stored (an
  in-process listener, only while an instance rule exists); each match is an
  outbox row and a ``route-send`` job (:mod:`pacs.routing.outbox`).
* ``send_study`` does the same for a person's "send this study there".
* Remote AEs get a C-STORE SCU over pooled associations
  (:mod:`pacs.routing.store_scu`), DICOMweb endpoints a STOW-RS client
  (:mod:`pacs.routing.stow_client`).
* ``find`` and ``retrieve`` query and move from another PACS
  (:mod:`pacs.routing.remote`); a retrieval is a job with its progress in a row.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pacs.auth.principal import Kind, Principal, Role
from pacs.index.models import Instance, Series, Study
from pacs.index.routing_models import RemoteRetrieve
from pacs.jobs import Jobs
from pacs.routing import remote
from pacs.routing.consult import Consultations, Packages
from pacs.routing.external import Correct, ExternalStudies
from pacs.routing.outbox import Outbox, SendView
from pacs.routing.rules import RuleBook
from pacs.routing.store_scu import (
    AssociationPool,
    Delivery,
    DestinationUnavailable,
    StoreSCU,
)
from pacs.routing.stow_client import StowClient
from pacs.routing.values import Arrival, Destination, UnknownRoute, destination

if TYPE_CHECKING:
    from pacs.archive.events import Events
    from pacs.archive.ingest import IngestResult
    from pacs.archive.retrieve import StoredInstance
    from pacs.config import RemoteAE, RemoteAEs
    from pacs.settings import Settings

log = logging.getLogger(__name__)

SEND_JOB = "route-send"
STUDY_JOB = "route-study"
RETRIEVE_JOB = "remote-retrieve"
PROGRESS_EVERY_S = 1.0

Locate = Callable[..., list["StoredInstance"]]


class DestinationNotFound(UnknownRoute):
    """The destination names no enabled remote AE or DICOMweb endpoint."""


class StudyNotFound(UnknownRoute):
    """No stored instance of that study."""


@dataclass(frozen=True)
class Queued:
    """What a send request queued: the outbox row and the job that drains its destination."""

    send: SendView
    job_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {"send": self.send.as_json(), "job": self.job_id}


class Routing:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        jobs: Jobs,
        events: Events,
        remote_aes: RemoteAEs,
        settings: Settings,
        *,
        locate: Locate,
        open_blob: Callable[[str], BinaryIO],
        client_tls: Callable[[], ssl.SSLContext],
        correct: Correct,
    ) -> None:
        self.sessions = sessions
        self.jobs = jobs
        self.remote_aes = remote_aes
        self.settings = settings
        self.locate = locate
        self.client_tls = client_tls
        self.rules = RuleBook(sessions)
        self.outbox = Outbox(sessions)
        spool = settings.spool_dir or Path(settings.data_dir) / "spool"
        self.pool = AssociationPool(settings.ae_title)
        self.store_scu = StoreSCU(self.pool, open_blob, spool, settings.retrieve_convert_max_bytes)
        self.stow = StowClient(open_blob, spool)
        retry = {
            "backoff_s": settings.route_backoff_seconds,
            "backoff_cap_s": settings.route_backoff_cap_seconds,
        }
        jobs.handle(SEND_JOB, self._send_job, **retry)
        jobs.handle(STUDY_JOB, self._study_job, backoff_s=30.0)
        jobs.handle(RETRIEVE_JOB, self._retrieve_job, **retry)
        events.on_study_stable(STUDY_JOB)
        events.on_instance(self._instance_stored)
        self.consultations = Consultations(sessions, jobs, self)
        self.packages = Packages(jobs, self, self.consultations.client)
        self.external = ExternalStudies(sessions, correct, settings.fhir_citizen_id_issuer)
        # What this archive does on its own (marking, mapping) is audited under its AE title.
        self.itself = Principal(Kind.AE, settings.ae_title, Role.INTEGRATION)

    def close(self) -> None:
        self.pool.close()
        self.stow.close()
        self.consultations.close()

    # -- destinations ---------------------------------------------------------------------------

    def check_destination(self, text: str) -> Destination:
        """The destination if it names an enabled remote AE or endpoint; else
        :class:`DestinationNotFound` (or :class:`~pacs.routing.values.InvalidRoute`)."""
        where = destination(text)
        if where.kind == "ae":
            peer = self.remote_aes.find(where.name)
            if peer is None or not peer.enabled:
                raise DestinationNotFound(f"no enabled remote AE {where.name!r}")
        else:
            try:
                endpoint = self.rules.endpoint(where.name)
            except UnknownRoute as exc:
                raise DestinationNotFound(str(exc)) from exc
            if not endpoint.enabled:
                raise DestinationNotFound(f"DICOMweb endpoint {where.name!r} is disabled")
        return where

    # -- producers --------------------------------------------------------------------------------

    def send_study(self, study_uid: str, to: str, *, priority: int = 0, origin: str = "") -> Queued:
        """Queue a whole study for ``to`` (a person's "send"); :class:`StudyNotFound`,
        :class:`DestinationNotFound`."""
        where = self.check_destination(to)
        if not self.locate(study_uid):
            raise StudyNotFound(f"no stored study {study_uid}")
        with self.sessions.begin() as session:
            send_id = self.outbox.add(
                session,
                destination=where.key,
                study_uid=study_uid,
                priority=priority,
                origin=origin,
            )
            assert send_id is not None
            job_id = self._queue(session, where.key, send_id)
        self.jobs.queue.notify()
        return Queued(self.outbox.get(send_id), job_id)

    def retry_send(self, send_id: int) -> Queued:
        """A failed or cancelled send queued again; ``UnknownRoute`` or ``ValueError``."""
        with self.sessions.begin() as session:
            view = self.outbox.reopen(session, send_id)
            job_id = self._queue(session, view.destination, send_id, again=True)
        self.jobs.queue.notify()
        return Queued(self.outbox.get(send_id), job_id)

    def _queue(self, session: Session, where: str, send_id: int, again: bool = False) -> int | None:
        suffix = f":{uuid.uuid4().hex[:8]}" if again else ""
        return self.jobs.queue.enqueue(
            SEND_JOB,
            {"destination": where, "send": send_id},
            dedup_key=f"{SEND_JOB}:{send_id}{suffix}",
            max_attempts=self.settings.route_max_attempts,
            session=session,
        )

    def _route(self, arrival: Arrival, trigger: str) -> int:
        """Outbox rows and jobs for every rule of ``trigger`` that ``arrival`` matches."""
        now = datetime.now().astimezone()
        matched = [r for r in self.rules.enabled_rules(trigger) if r.matches(arrival, now)]
        if not matched:
            return 0
        queued = 0
        with self.sessions.begin() as session:
            for rule in matched:
                send_id = self.outbox.add(
                    session,
                    destination=rule.destination,
                    study_uid=arrival.study_uid,
                    sop_uids=arrival.sop_uids,
                    priority=rule.priority,
                    origin=f"rule:{rule.name}",
                    dedup=f"{rule.id}:{arrival.study_uid}:{arrival.stamp}"[:256],
                )
                if send_id is not None:
                    self._queue(session, rule.destination, send_id)
                    queued += 1
        if queued:
            self.jobs.queue.notify()
        return queued

    def _study_job(self, payload: dict[str, Any]) -> None:
        """A stable study: route it by the stable rules (idempotent through ``dedup``)."""
        arrival = self._study_arrival(str(payload["study_uid"]))
        if arrival is not None:
            self._route(arrival, "stable")

    def _instance_stored(self, result: IngestResult) -> None:
        """Each new instance, while an instance rule exists (in-process: see README)."""
        if str(result.outcome) not in ("stored", "replaced"):
            return
        if not self.rules.enabled_rules("instance"):
            return
        arrival = self._instance_arrival(result.sop_instance_uid, result.study_uid, result.sha256)
        if arrival is not None:
            self._route(arrival, "instance")

    def _study_arrival(self, study_uid: str) -> Arrival | None:
        with self.sessions() as session:
            study = session.scalar(select(Study).where(Study.study_uid == study_uid))
            if study is None:
                return None
            series = session.execute(
                select(Series.modality, Series.body_part_examined).where(
                    Series.study_pk == study.pk
                )
            ).all()
            callers = session.scalars(
                select(Instance.source_ae)
                .distinct()
                .join(Series, Instance.series_pk == Series.pk)
                .where(Series.study_pk == study.pk)
            ).all()
            return Arrival(
                study_uid=study_uid,
                calling_aes=tuple(callers),
                modalities=tuple({m for m, _ in series}),
                body_parts=tuple({b for _, b in series}),
                description=study.study_description,
                stamp=_stamp(study.updated_at),
            )

    def _instance_arrival(self, sop_uid: str, study_uid: str, sha256: str) -> Arrival | None:
        with self.sessions() as session:
            row = session.execute(
                select(
                    Instance.source_ae,
                    Series.modality,
                    Series.body_part_examined,
                    Study.study_description,
                )
                .join(Series, Instance.series_pk == Series.pk)
                .join(Study, Series.study_pk == Study.pk)
                .where(Instance.sop_instance_uid == sop_uid)
            ).first()
        if row is None:
            return None
        source_ae, modality, body_part, description = row
        return Arrival(
            study_uid=study_uid,
            calling_aes=(source_ae,),
            modalities=(modality,),
            body_parts=(body_part,),
            description=description,
            stamp=f"{sop_uid}:{sha256[:16]}",
            sop_uids=(sop_uid,),
        )

    # -- the drain (route-send jobs) --------------------------------------------------------------

    def _send_job(self, payload: dict[str, Any]) -> None:
        """Drain the payload's destination; raises (retry later) while it is down."""
        where = str(payload["destination"])
        while True:
            holder = uuid.uuid4().hex
            if not self.outbox.claim_lane(where, holder):
                return  # its drainer takes this job's row too (see pacs.routing.outbox)
            try:
                self._drain(destination(where), holder)
            finally:
                self.outbox.release_lane(where, holder)
            if self.outbox.next_pending(where) is None:
                return

    def _drain(self, where: Destination, holder: str) -> None:
        while (send := self.outbox.next_pending(where.key)) is not None:
            self.outbox.renew_lane(where.key, holder)
            instances = self.locate(study_uid=send.study_uid)
            if send.sop_uids:
                wanted = set(send.sop_uids)
                instances = [i for i in instances if i.sop_instance_uid in wanted]
            try:
                delivery = self._deliver(where, send, instances, holder)
            except DestinationNotFound as exc:
                self.outbox.finish(send.id, total=len(instances), done=0, failed=0, error=str(exc))
                continue
            except DestinationUnavailable as exc:
                self.outbox.attempt(send.id, str(exc))
                raise
            error = "; ".join(delivery.reasons[:20])
            self.outbox.finish(
                send.id,
                total=len(instances),
                done=delivery.sent,
                failed=len(delivery.failed),
                error=error,
            )
            log.info(
                "sent study %s to %s: %d of %d instances",
                send.study_uid,
                where.key,
                delivery.sent,
                len(instances),
            )

    def _deliver(
        self, where: Destination, send: SendView, instances: list[StoredInstance], holder: str
    ) -> Delivery:
        self.check_destination(where.key)

        def record(sent: int, failed: int) -> None:
            self.outbox.progress(send.id, len(instances), sent, failed)
            self.outbox.renew_lane(where.key, holder)

        report = _Throttled(record)
        if where.kind == "ae":
            peer = self.remote_aes.get(where.name)
            return self.store_scu.send(
                peer,
                instances,
                associations=self.settings.route_associations,
                tls=self._tls(peer),
                progress=report,
            )
        return self.stow.send(self.rules.endpoint(where.name), instances, progress=report)

    def _tls(self, peer: RemoteAE) -> ssl.SSLContext | None:
        return self.client_tls() if peer.tls_required else None

    # -- query and retrieve from another PACS -----------------------------------------------------

    def find(
        self, title: str, level: str, keys: dict[str, str], limit: int = 500
    ) -> tuple[list[dict[str, Any]], bool]:
        """C-FIND at remote AE ``title``; ``UnknownAE``, ``BadQuery``, ``DestinationUnavailable``
        when it cannot be done."""
        peer = self.remote_aes.get(title)
        identifier = remote.query_dataset(level, keys)
        return remote.find(
            self.settings.ae_title, peer, identifier, limit=limit, tls=self._tls(peer)
        )

    def retrieve(
        self, title: str, study_uid: str, series_uid: str = "", requested_by: str = ""
    ) -> tuple[dict[str, Any], int | None]:
        """Queue a C-MOVE of a study (or series) from ``title`` to us: the row and its job."""
        peer = self.remote_aes.get(title)  # UnknownAE
        if not peer.enabled:
            raise DestinationNotFound(f"remote AE {title!r} is disabled")
        keys = {"StudyInstanceUID": study_uid}
        if series_uid:
            keys["SeriesInstanceUID"] = series_uid
        remote.query_dataset("SERIES" if series_uid else "STUDY", keys)  # BadQuery
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            row = RemoteRetrieve(
                ae_title=peer.ae_title,
                level="SERIES" if series_uid else "STUDY",
                study_uid=study_uid,
                series_uid=series_uid,
                state="pending",
                completed=0,
                failed=0,
                warning=0,
                remaining=0,
                last_error="",
                requested_by=requested_by[:128],
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            job_id = self.jobs.queue.enqueue(
                RETRIEVE_JOB,
                {"retrieve": row.pk},
                dedup_key=f"{RETRIEVE_JOB}:{row.pk}",
                max_attempts=self.settings.route_max_attempts,
                session=session,
            )
            retrieve_id = row.pk
        self.jobs.queue.notify()
        return self.retrieval(retrieve_id), job_id

    def retrieval(self, retrieve_id: int) -> dict[str, Any]:
        with self.sessions() as session:
            row = session.get(RemoteRetrieve, retrieve_id)
            if row is None:
                raise UnknownRoute(f"no retrieval {retrieve_id}")
            return _retrieval_json(row)

    def _retrieve_job(self, payload: dict[str, Any]) -> None:
        retrieve_id = int(payload["retrieve"])
        with self.sessions() as session:
            row = session.get(RemoteRetrieve, retrieve_id)
            if row is None or row.state != "pending":
                return
            title, level, study_uid, series_uid = (
                row.ae_title,
                row.level,
                row.study_uid,
                row.series_uid,
            )
        peer = self.remote_aes.get(title)
        keys = {"StudyInstanceUID": study_uid}
        if series_uid:
            keys["SeriesInstanceUID"] = series_uid
        identifier = remote.query_dataset(level, keys)
        report = _Throttled(lambda done, _f: None)

        def progress(state: remote.MoveProgress) -> None:
            report.last = state
            if report.due():
                self._retrieve_progress(retrieve_id, state, "pending")

        try:
            final = remote.move(
                self.settings.ae_title, peer, identifier, progress=progress, tls=self._tls(peer)
            )
        except DestinationUnavailable as exc:
            self._retrieve_error(retrieve_id, str(exc))
            raise
        ok = final.status in (0x0000, 0xB000) and not final.failed
        status = "done" if ok else "failed"
        if final.completed or final.warning:
            self.mark_external(study_uid, f"ae:{title}")
        self._retrieve_progress(retrieve_id, final, status)

    def mark_external(self, study_uid: str, source: str) -> None:
        """Mark a study that arrived from elsewhere (and map its patient ID), if stored."""
        try:
            self.external.mark(study_uid, source, self.itself)
        except UnknownRoute:
            log.info("study %s from %s is not stored here (yet): not marked", study_uid, source)

    def _retrieve_progress(self, retrieve_id: int, state: remote.MoveProgress, status: str) -> None:
        error = ""
        if status == "failed":
            error = f"C-MOVE ended with status 0x{(state.status or 0):04X}, {state.failed} failed"
        with self.sessions.begin() as session:
            session.execute(
                update(RemoteRetrieve)
                .where(RemoteRetrieve.pk == retrieve_id)
                .values(
                    state=status,
                    completed=state.completed,
                    failed=state.failed,
                    warning=state.warning,
                    remaining=state.remaining,
                    last_error=error,
                    updated_at=datetime.now(UTC),
                )
            )

    def _retrieve_error(self, retrieve_id: int, error: str) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(RemoteRetrieve)
                .where(RemoteRetrieve.pk == retrieve_id)
                .values(last_error=error[:4000], updated_at=datetime.now(UTC))
            )


class _Throttled:
    """Calls ``report(sent, failed)`` at most every :data:`PROGRESS_EVERY_S` seconds."""

    def __init__(self, report: Callable[[int, int], Any]) -> None:
        self.report = report
        self.last: Any = None
        self._at = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._at < PROGRESS_EVERY_S:
                return False
            self._at = now
            return True

    def __call__(self, sent: int, failed: int) -> None:
        if self.due():
            self.report(sent, failed)


def _stamp(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat()


def _retrieval_json(row: RemoteRetrieve) -> dict[str, Any]:
    return {
        "id": row.pk,
        "ae_title": row.ae_title,
        "level": row.level,
        "study_uid": row.study_uid,
        "series_uid": row.series_uid,
        "state": row.state,
        "progress": {
            "completed": row.completed,
            "failed": row.failed,
            "warning": row.warning,
            "remaining": row.remaining,
        },
        "last_error": row.last_error,
        "requested_by": row.requested_by,
    }
