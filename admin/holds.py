"""``/api/studies/{study}/hold``: legal holds, for administrators.

A study under a legal hold cannot be deleted (DICOMweb DELETE answers 409)
until an administrator releases the hold. Setting and releasing are audited
with the reason given.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.archive.errors import NotFound
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]


class HoldRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=1024)


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


@router.get("/api/studies/{study}/hold")
def get_hold(request: Request, principal: Admin, study: str) -> dict[str, Any]:
    """The study's legal hold; 404 when it has none."""
    hold = _archive(request).legal_hold(study)
    if hold is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"study {study} has no legal hold")
    return hold.as_json()


@router.put("/api/studies/{study}/hold")
def set_hold(request: Request, principal: Admin, study: str, body: HoldRequest) -> dict[str, Any]:
    """Put the study under a legal hold (or change its reason); 404 for an unknown study."""
    try:
        return _archive(request).set_legal_hold(principal, study, body.reason).as_json()
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.delete("/api/studies/{study}/hold", status_code=status.HTTP_204_NO_CONTENT)
def release_hold(request: Request, principal: Admin, study: str, reason: str = "") -> Response:
    """Release the study's legal hold; 404 when it has none."""
    try:
        _archive(request).release_legal_hold(principal, study, reason)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)
