"""``POST /api/studies/{study}/rejections``: IHE IOCM rejection, for the roles allowed to delete.

Body: ``{"code": "113001", "series_uid": "...", "sop_instance_uids": [...],
"reason": "..."}`` (series and instances optional: without them the whole
study). Codes: 113001 quality, 113037 patient safety (wrong patient), 113038
wrong modality worklist entry, 113039 data retention policy expired. The
rejected objects leave every door, a Key Object Selection rejection note is
stored in the study, the bytes are purged after ``delete_purge_after_hours``.
Answers 201 with what was rejected, 400 (unknown code, instances without their
series), 403 (role), 404 (nothing to reject), 409 (legal hold).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.archive.errors import LegalHoldActive, NotFound
from pacs.archive.rejection import REASONS, InvalidRejection
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Deleter = Annotated[Principal, Depends(authorize("delete"))]


class RejectionRequest(BaseModel):
    code: str = Field(min_length=1, max_length=16, description=f"one of {', '.join(REASONS)}")
    series_uid: str | None = Field(default=None, max_length=64)
    sop_instance_uids: list[str] = Field(default_factory=list, max_length=10000)
    reason: str = Field(default="", max_length=1024)


@router.post("/api/studies/{study}/rejections", status_code=status.HTTP_201_CREATED)
def reject(
    request: Request, principal: Deleter, study: str, body: RejectionRequest
) -> dict[str, Any]:
    """Reject the study, a series of it or instances of that series."""
    archive: Archive = request.app.state.archive
    try:
        view = archive.reject(
            principal,
            study,
            code=body.code,
            series_uid=body.series_uid,
            sop_instance_uids=body.sop_instance_uids or None,
            reason=body.reason,
        )
    except InvalidRejection as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except LegalHoldActive as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return view.as_json()
