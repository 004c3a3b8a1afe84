"""``/api/patients/merge``, ``/split``, ``/moves``: patient merge and split, for administrators.

``POST /api/patients/merge`` with ``{"source": {"patient_id": "BN0002"}, "target":
{"patient_id": "BN0001"}, "reason": "..."}`` moves every study of the source to
the target as audited corrections; PatientID=BN0002 keeps finding them (QIDO,
C-FIND) as an alias of BN0001. ``POST /api/patients/split`` moves chosen studies
to another (possibly new) patient ID. ``POST /api/studies/{study}/series/{series}/move``
moves one series to another study (``target_study_uid``) or to a new study of a
patient (``patient``). ``GET /api/patients/moves`` lists both and
``POST /api/patients/moves/{id}/undo`` reverses one. Answers 400 for a bad
request (same patient, other issuer, no reason, already undone), 404 for an
unknown patient, study or move.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.archive.errors import InvalidCorrection, NotFound
from pacs.archive.patients import PatientRef
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]


class Patient(BaseModel):
    patient_id: str = Field(min_length=1, max_length=64)
    issuer: str = Field(default="", max_length=64)

    def ref(self) -> PatientRef:
        return PatientRef(self.patient_id.strip(), self.issuer.strip())


class MergeRequest(BaseModel):
    source: Patient
    target: Patient
    reason: str = Field(min_length=1, max_length=1024)


class SplitRequest(BaseModel):
    source: Patient
    target: Patient
    study_uids: list[str] = Field(min_length=1, max_length=1000)
    # Demographics of a new target patient (PatientName, PatientBirthDate, PatientSex).
    attributes: dict[str, str] = Field(default_factory=dict, max_length=8)
    reason: str = Field(min_length=1, max_length=1024)


class SeriesMoveRequest(BaseModel):
    # Either an existing study, or a patient for whom a new study is made.
    target_study_uid: str | None = Field(default=None, max_length=64)
    patient: Patient | None = None
    reason: str = Field(min_length=1, max_length=1024)


class UndoRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=1024)


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _answer(call: Any) -> dict[str, Any]:
    try:
        view = call()
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidCorrection as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    result: dict[str, Any] = view.as_json()
    return result


@router.post("/api/patients/merge")
def merge_patients(request: Request, principal: Admin, body: MergeRequest) -> dict[str, Any]:
    """Move every study of ``source`` to ``target``; the move recorded."""
    archive = _archive(request)
    return _answer(
        lambda: archive.merge_patients(principal, body.source.ref(), body.target.ref(), body.reason)
    )


@router.post("/api/patients/split")
def split_patient(request: Request, principal: Admin, body: SplitRequest) -> dict[str, Any]:
    """Move ``study_uids`` of ``source`` to ``target``; the move recorded."""
    archive = _archive(request)
    if set(body.attributes) - {"PatientName", "PatientBirthDate", "PatientSex"}:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "attributes: only PatientName, PatientBirthDate and PatientSex",
        )
    return _answer(
        lambda: archive.split_patient(
            principal,
            body.source.ref(),
            body.study_uids,
            body.target.ref(),
            body.reason,
            body.attributes,
        )
    )


@router.post("/api/studies/{study}/series/{series}/move")
def move_series(
    request: Request, principal: Admin, study: str, series: str, body: SeriesMoveRequest
) -> dict[str, Any]:
    """Move the series to ``target_study_uid``, or to a new study of ``patient``."""
    archive = _archive(request)
    return _answer(
        lambda: archive.move_series(
            principal,
            study,
            series,
            body.reason,
            target_study_uid=body.target_study_uid,
            patient=body.patient.ref() if body.patient else None,
        )
    )


@router.get("/api/patients/moves")
def list_moves(
    request: Request,
    principal: Admin,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Merges and splits, newest first (optionally those naming ``patient_id``)."""
    moves = _archive(request).patient_moves_of(patient_id, limit)
    return {"moves": [move.as_json() for move in moves]}


@router.post("/api/patients/moves/{move_id}/undo")
def undo_move(
    request: Request, principal: Admin, move_id: int, body: UndoRequest
) -> dict[str, Any]:
    """Move the studies back and drop the alias; the move, now marked undone."""
    archive = _archive(request)
    if not 0 < move_id < 2**31:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no patient merge or split {move_id}")
    return _answer(lambda: archive.undo_patient_move(principal, move_id, body.reason))
