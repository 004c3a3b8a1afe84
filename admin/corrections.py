"""``/api/studies/{study}/corrections`` and ``/versions``: audited corrections, for administrators.

``POST /api/studies/{study}/corrections`` with ``{"attributes": {"PatientName":
"Nguyễn^Văn Bình", ...}, "reason": "..."}`` corrects patient or study
attributes (the keywords of :data:`pacs.archive.corrections.CORRECTABLE`); the
index, the stored metadata and the served objects present the new values, the
objects as received are kept, and each affected study gets an audited version.
``GET /api/studies/{study}/versions`` lists them (who, when, why, old and new).
Answers 400 for an attribute that cannot be corrected, a bad value or no
reason, 404 for an unknown study.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.archive.errors import InvalidCorrection, NotFound
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]


class CorrectionRequest(BaseModel):
    attributes: dict[str, str] = Field(min_length=1, max_length=16)
    reason: str = Field(min_length=1, max_length=1024)


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


@router.post("/api/studies/{study}/corrections")
def correct_study(
    request: Request, principal: Admin, study: str, body: CorrectionRequest
) -> dict[str, Any]:
    """Correct the study's attributes; the versions recorded (this study's first)."""
    archive = _archive(request)
    try:
        versions = archive.correct(principal, study, body.attributes, body.reason)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except InvalidCorrection as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    return {"versions": [version.as_json() for version in versions]}


@router.get("/api/studies/{study}/versions")
def study_versions(request: Request, principal: Admin, study: str) -> dict[str, Any]:
    """Every correction of the study, oldest first, and the values it now presents."""
    archive = _archive(request)
    try:
        versions = archive.correction_versions(study)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return {
        "study_uid": study,
        "corrected": archive.corrected_attributes(study),
        "versions": [version.as_json() for version in versions],
    }
