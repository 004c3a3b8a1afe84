"""Consultation between facilities (hội chẩn, issue 19 item 4), between two of these archives.

The requesting side (``out``) sends the study to the consulted facility's
DICOMweb endpoint (an outbox send, ahead of routine traffic when urgent) and,
once it has arrived, the request itself (``consult-request`` job) to that
facility's ``/api/consultations/incoming`` with the endpoint's credential. The
request carries where to answer and a secret made for this consultation only.
The consulted side (``in``) lists it; a consultant's answer goes back by a
``consult-reply`` job to the requester's ``/api/consultations/{id}/reply``
with that secret. Both sides see the status (sending, requested / received,
answered); the requester sees the answer beside its study.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.routing_models import Consultation
from pacs.jobs import Jobs
from pacs.routing.stow_client import auth_headers
from pacs.routing.values import InvalidRoute, UnknownRoute

if TYPE_CHECKING:
    from pacs.routing.service import Routing

REQUEST_JOB = "consult-request"
REPLY_JOB = "consult-reply"
URGENCY_PRIORITY = {"routine": 0, "urgent": 500, "stat": 1000}
MAX_TEXT = 8000


class NotYet(Exception):
    """The study has not reached the consulted facility yet: ask again later."""


@dataclass(frozen=True)
class ConsultationView:
    id: int
    direction: str
    study_uid: str
    question: str
    urgency: str
    facility: str
    status: str
    answer: str
    answered_by: str
    requested_by: str
    last_error: str
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "study_uid": self.study_uid,
            "question": self.question,
            "urgency": self.urgency,
            "facility": self.facility,
            "status": self.status,
            "answer": self.answer,
            "answered_by": self.answered_by,
            "requested_by": self.requested_by,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _view(row: Consultation) -> ConsultationView:
    def aware(value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    return ConsultationView(
        row.pk,
        row.direction,
        row.study_uid,
        row.question,
        row.urgency,
        row.facility,
        row.status,
        row.answer,
        row.answered_by,
        row.requested_by,
        row.last_error,
        aware(row.created_at),
        aware(row.updated_at),
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _text(name: str, value: str, limit: int = MAX_TEXT) -> str:
    text = str(value).strip()
    if not text or len(text) > limit:
        raise InvalidRoute(f"{name}: 1 to {limit} characters")
    return text


class Consultations:
    def __init__(self, sessions: sessionmaker[Session], jobs: Jobs, routing: Routing) -> None:
        self.sessions = sessions
        self.jobs = jobs
        self.routing = routing
        self.client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
        retry = {
            "backoff_s": routing.settings.route_backoff_seconds,
            "backoff_cap_s": routing.settings.route_backoff_cap_seconds,
        }
        jobs.handle(REQUEST_JOB, self._request_job, **retry)
        jobs.handle(REPLY_JOB, self._reply_job, **retry)

    def close(self) -> None:
        self.client.close()

    # -- the requesting side -----------------------------------------------------------------

    def request(
        self,
        study_uid: str,
        facility: str,
        question: str,
        urgency: str,
        *,
        requested_by: str,
        reply_base: str,
    ) -> ConsultationView:
        """Send the study to ``facility`` (an endpoint name), then the request; raises
        ``InvalidRoute``, ``DestinationNotFound``, ``StudyNotFound``."""
        if urgency not in URGENCY_PRIORITY:
            raise InvalidRoute(f"urgency: one of {', '.join(URGENCY_PRIORITY)}")
        question = _text("question", question)
        endpoint = self.routing.rules.endpoint(facility)  # UnknownRoute
        queued = self.routing.send_study(
            study_uid,
            f"web:{endpoint.name}",
            priority=URGENCY_PRIORITY[urgency],
            origin=f"consultation:{requested_by}",
        )
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            row = Consultation(
                direction="out",
                study_uid=study_uid,
                question=question,
                urgency=urgency,
                facility=endpoint.name,
                status="sending",
                answer="",
                answered_by="",
                requested_by=requested_by[:128],
                send_id=queued.send.id,
                secret_hash=_digest(secret),
                reply_url=None,
                remote_id=None,
                reply_secret="",
                last_error="",
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            self.jobs.queue.enqueue(
                REQUEST_JOB,
                {
                    "consultation": row.pk,
                    "secret": secret,
                    "reply_url": f"{reply_base.rstrip('/')}/api/consultations/{row.pk}/reply",
                },
                dedup_key=f"{REQUEST_JOB}:{row.pk}",
                max_attempts=self.routing.settings.route_max_attempts,
                session=session,
            )
            view = _view(row)
        self.jobs.queue.notify()
        return view

    def _request_job(self, payload: dict[str, Any]) -> None:
        row = self.get(int(payload["consultation"]))
        if row.status != "sending":
            return  # delivered already (the job ran twice)
        with self.sessions() as session:
            send_id = session.get(Consultation, row.id).send_id  # type: ignore[union-attr]
        send = self.routing.outbox.get(int(send_id or 0))
        if send.state in ("failed", "cancelled"):
            self._set(row.id, last_error=f"the study was not sent: {send.last_error}"[:4000])
            return
        if send.state != "sent":
            raise NotYet(f"study send {send.id} is {send.state}")
        endpoint = self.routing.rules.endpoint(row.facility)
        base = endpoint.url.removesuffix("/dicom-web")
        body = {
            "remote_id": row.id,
            "study_uid": row.study_uid,
            "question": row.question,
            "urgency": row.urgency,
            "facility": self.routing.settings.ae_title,
            "reply_url": payload["reply_url"],
            "reply_secret": payload["secret"],
        }
        response = self.client.post(
            f"{base}/api/consultations/incoming", json=body, headers=auth_headers(endpoint)
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"{endpoint.name} answered HTTP {response.status_code}")
        self._set(row.id, status="requested", last_error="")

    def reply(self, consultation_id: int, secret: str, answer: str, answered_by: str) -> None:
        """The consulted facility's answer; ``UnknownRoute`` unless the secret matches."""
        with self.sessions.begin() as session:
            row = session.get(Consultation, consultation_id)
            if (
                row is None
                or row.direction != "out"
                or not hmac.compare_digest(row.secret_hash, _digest(str(secret)))
            ):
                raise UnknownRoute("no such consultation, or not this secret")
            row.answer = _text("answer", answer)
            row.answered_by = str(answered_by)[:128]
            row.status = "answered"
            row.updated_at = datetime.now(UTC)

    # -- the consulted side ------------------------------------------------------------------

    def receive(self, body: dict[str, Any]) -> ConsultationView:
        """A request from another facility (idempotent: the same request twice is one row)."""
        reply_url = _text("reply_url", body.get("reply_url", ""), 512)
        if not reply_url.startswith(("http://", "https://")):
            raise InvalidRoute("reply_url: an http:// or https:// URL")
        try:
            remote_id = int(body.get("remote_id", 0))
        except (TypeError, ValueError) as exc:
            raise InvalidRoute("remote_id: a positive integer") from exc
        if not 0 < remote_id < 2**31:
            raise InvalidRoute("remote_id: a positive integer")
        urgency = str(body.get("urgency", "routine"))
        if urgency not in URGENCY_PRIORITY:
            raise InvalidRoute(f"urgency: one of {', '.join(URGENCY_PRIORITY)}")
        now = datetime.now(UTC)
        try:
            with self.sessions.begin() as session:
                row = Consultation(
                    direction="in",
                    study_uid=_text("study_uid", body.get("study_uid", ""), 64),
                    question=_text("question", body.get("question", "")),
                    urgency=urgency,
                    facility=_text("facility", body.get("facility", ""), 128),
                    status="received",
                    answer="",
                    answered_by="",
                    requested_by="",
                    send_id=None,
                    secret_hash="",
                    reply_url=reply_url,
                    remote_id=remote_id,
                    reply_secret=_text("reply_secret", body.get("reply_secret", ""), 128),
                    last_error="",
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                view = _view(row)
            self.routing.mark_external(view.study_uid, f"facility:{view.facility}")
            return view
        except IntegrityError:
            with self.sessions() as session:
                found = session.scalar(
                    select(Consultation).where(
                        Consultation.reply_url == reply_url,
                        Consultation.remote_id == remote_id,
                    )
                )
                assert found is not None
                return _view(found)

    def answer(self, consultation_id: int, text: str, answered_by: str) -> ConsultationView:
        """A consultant's answer to a request received; sent back by a job."""
        with self.sessions.begin() as session:
            row = session.get(Consultation, consultation_id)
            if row is None or row.direction != "in":
                raise UnknownRoute(f"no consultation request {consultation_id} received")
            row.answer = _text("answer", text)
            row.answered_by = answered_by[:128]
            row.status = "answered"
            row.updated_at = datetime.now(UTC)
            self.jobs.queue.enqueue(
                REPLY_JOB,
                {"consultation": row.pk},
                max_attempts=self.routing.settings.route_max_attempts,
                session=session,
            )
            view = _view(row)
        self.jobs.queue.notify()
        return view

    def _reply_job(self, payload: dict[str, Any]) -> None:
        with self.sessions() as session:
            row = session.get(Consultation, int(payload["consultation"]))
            if row is None:
                return
            url, body = (
                str(row.reply_url),
                {"secret": row.reply_secret, "answer": row.answer, "answered_by": row.answered_by},
            )
        response = self.client.post(url, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"the requesting facility answered HTTP {response.status_code}")

    # -- both --------------------------------------------------------------------------------

    def get(self, consultation_id: int) -> ConsultationView:
        with self.sessions() as session:
            row = session.get(Consultation, consultation_id)
            if row is None:
                raise UnknownRoute(f"no consultation {consultation_id}")
            return _view(row)

    def list(self, study_uid: str | None = None, limit: int = 100) -> list[ConsultationView]:
        query = select(Consultation).order_by(Consultation.pk.desc()).limit(limit)
        if study_uid is not None:
            query = query.where(Consultation.study_uid == study_uid)
        with self.sessions() as session:
            return [_view(row) for row in session.scalars(query).all()]

    def _set(self, consultation_id: int, **values: Any) -> None:
        with self.sessions.begin() as session:
            row = session.get(Consultation, consultation_id)
            if row is not None:
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = datetime.now(UTC)


PACKAGE_JOB = "package-notice"


class Packages:
    """Result packages pushed to another facility (issue 19 item 5): the study (its images
    and, once signed, the report's SR and Encapsulated PDF, which live in the study) by
    STOW-RS, then a notice to the facility's ``/api/external-studies/incoming`` so that it
    keeps the study as external, with where it came from."""

    def __init__(self, jobs: Jobs, routing: Routing, client: httpx.Client) -> None:
        self.jobs = jobs
        self.routing = routing
        self.client = client
        jobs.handle(
            PACKAGE_JOB,
            self._notice_job,
            backoff_s=routing.settings.route_backoff_seconds,
            backoff_cap_s=routing.settings.route_backoff_cap_seconds,
        )

    def push(self, study_uid: str, facility: str, requested_by: str) -> dict[str, Any]:
        """Queue the study and its notice; ``UnknownRoute``, ``StudyNotFound``."""
        endpoint = self.routing.rules.endpoint(facility)
        queued = self.routing.send_study(
            study_uid, f"web:{endpoint.name}", origin=f"package:{requested_by}"
        )
        job = self.jobs.enqueue(
            PACKAGE_JOB,
            {"send": queued.send.id, "facility": endpoint.name, "study_uid": study_uid},
            max_attempts=self.routing.settings.route_max_attempts,
        )
        return {"send": queued.send.as_json(), "job": job}

    def _notice_job(self, payload: dict[str, Any]) -> None:
        send = self.routing.outbox.get(int(payload["send"]))
        if send.state in ("failed", "cancelled"):
            return  # nothing arrived: nothing to announce (the send's own error says why)
        if send.state != "sent":
            raise NotYet(f"study send {send.id} is {send.state}")
        endpoint = self.routing.rules.endpoint(str(payload["facility"]))
        base = endpoint.url.removesuffix("/dicom-web")
        body = {"study_uid": payload["study_uid"], "facility": self.routing.settings.ae_title}
        response = self.client.post(
            f"{base}/api/external-studies/incoming", json=body, headers=auth_headers(endpoint)
        )
        if response.status_code != 200:
            raise RuntimeError(f"{endpoint.name} answered HTTP {response.status_code}")
