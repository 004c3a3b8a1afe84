"""``/api/consultations``: consultation between facilities (hội chẩn), both sides.

* ``POST /api/consultations`` (operation ``send``): ask another facility (a DICOMweb
  endpoint of ``/api/routes/endpoints`` that is another of these archives) about a study;
  the study goes first, the request once it has arrived.
* ``POST /api/consultations/incoming`` (operation ``store``: the requesting archive's
  credential here): a request from another facility.
* ``POST /api/consultations/{id}/answer`` (operation ``send``): the consultant's answer,
  sent back by a job; ``POST /api/consultations/{id}/reply`` is where it arrives (public:
  the per-consultation secret is the credential).
* ``GET /api/consultations[?study=]`` and ``/{id}``: either side's status and answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal
from pacs.routing.service import DestinationNotFound, StudyNotFound
from pacs.routing.values import InvalidRoute, UnknownRoute

router = APIRouter()

Sender = Annotated[Principal, Depends(authorize("send"))]
Facility = Annotated[Principal, Depends(authorize("store"))]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class RequestBody(BaseModel):
    study_uid: str = Field(max_length=64, pattern=r"^[0-9.]+$")
    facility: str = Field(max_length=64, description="a DICOMweb endpoint's name")
    question: str = Field(max_length=8000)
    urgency: str = Field(default="routine", max_length=8, description="routine, urgent, stat")


class IncomingBody(BaseModel):
    remote_id: int = Field(ge=1, le=2**31 - 1)
    study_uid: str = Field(max_length=64, pattern=r"^[0-9.]+$")
    question: str = Field(max_length=8000)
    urgency: str = Field(default="routine", max_length=8)
    facility: str = Field(max_length=128)
    reply_url: str = Field(max_length=512)
    reply_secret: str = Field(max_length=128)


class AnswerBody(BaseModel):
    answer: str = Field(max_length=8000)


class ReplyBody(BaseModel):
    secret: str = Field(max_length=128)
    answer: str = Field(max_length=8000)
    answered_by: str = Field(default="", max_length=128)


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _base(request: Request, archive: Archive) -> str:
    """Where the consulted facility reaches us back (the configured public URL first)."""
    configured = archive.settings.public_base_url
    return configured.rstrip("/") if configured else f"{request.url.scheme}://{request.url.netloc}"


@router.post("/api/consultations", status_code=status.HTTP_201_CREATED)
def request_consultation(request: Request, principal: Sender, body: RequestBody) -> dict[str, Any]:
    archive = _archive(request)
    try:
        view = archive.routing.consultations.request(
            body.study_uid,
            body.facility,
            body.question,
            body.urgency,
            requested_by=principal.name,
            reply_base=_base(request, archive),
        )
    except (InvalidRoute, DestinationNotFound) as exc:
        raise HTTPException(422, str(exc)) from exc
    except (UnknownRoute, StudyNotFound) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    archive.audit.record(
        principal,
        "consultation-request",
        study_uid=body.study_uid,
        detail=f"to {body.facility} ({body.urgency})",
    )
    return view.as_json()


@router.get("/api/consultations")
def list_consultations(
    request: Request,
    principal: Sender,
    study: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    found = _archive(request).routing.consultations.list(study)
    return {"consultations": [c.as_json() for c in found]}


@router.get("/api/consultations/{consultation_id}")
def get_consultation(request: Request, principal: Sender, consultation_id: Id) -> dict[str, Any]:
    try:
        return _archive(request).routing.consultations.get(consultation_id).as_json()
    except UnknownRoute as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.post("/api/consultations/incoming", status_code=status.HTTP_201_CREATED)
def incoming(request: Request, principal: Facility, body: IncomingBody) -> dict[str, Any]:
    """A request from another facility (its study sent beforehand, by STOW-RS)."""
    archive = _archive(request)
    try:
        view = archive.routing.consultations.receive(body.model_dump())
    except InvalidRoute as exc:
        raise HTTPException(422, str(exc)) from exc
    archive.audit.record(
        principal,
        "consultation-received",
        study_uid=body.study_uid,
        detail=f"from {body.facility}"[:255],
    )
    return view.as_json()


@router.post("/api/consultations/{consultation_id}/answer")
def answer(
    request: Request, principal: Sender, consultation_id: Id, body: AnswerBody
) -> dict[str, Any]:
    archive = _archive(request)
    try:
        view = archive.routing.consultations.answer(consultation_id, body.answer, principal.name)
    except UnknownRoute as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidRoute as exc:
        raise HTTPException(422, str(exc)) from exc
    archive.audit.record(principal, "consultation-answer", study_uid=view.study_uid)
    return view.as_json()


@router.post("/api/consultations/{consultation_id}/reply")
def reply(request: Request, consultation_id: Id, body: ReplyBody) -> dict[str, str]:
    """The answer coming back; 404 for an unknown consultation or a wrong secret."""
    archive = _archive(request)
    try:
        archive.routing.consultations.reply(
            consultation_id, body.secret, body.answer, body.answered_by
        )
    except UnknownRoute as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidRoute as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"status": "answered"}
