"""``/api/retention``: the studies past their retention rule, and an administrator's approval.

Nothing is deleted by the rule itself: the list is a proposal; approved studies go
through the ordinary audited delete (soft delete, purged later), legal holds
respected. Listing names patients, so it is audited too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]
StudyUid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]


class Approval(BaseModel):
    study_uids: list[StudyUid] = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=1, max_length=1024)


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


@router.get("/api/retention/candidates")
def candidates(
    request: Request, principal: Admin, limit: Annotated[int, Query(ge=1, le=5000)] = 500
) -> dict[str, Any]:
    """Studies past their rule and not under a legal hold, oldest first."""
    archive = _archive(request)
    found = archive.retention.candidates(limit)
    archive.audit.record(
        principal,
        "retention-list",
        detail=f"{len(found)} studies proposed",
        patients=[c.patient_id for c in found],
    )
    return {"rules": archive.retention.rules, "studies": [c.as_json() for c in found]}


@router.post("/api/retention/approve")
def approve(request: Request, principal: Admin, body: Approval) -> dict[str, Any]:
    """Delete the approved studies that are still past their rule (each audited by the delete);
    the approval itself is audited too, with what became of each study (one not eligible any
    more, or held, is a decision on record as well)."""
    archive = _archive(request)
    outcome = archive.retention.approve(principal, body.study_uids, body.reason)
    counts = {state: list(outcome.values()).count(state) for state in sorted(set(outcome.values()))}
    archive.audit.record(
        principal,
        "retention-approve",
        detail=f"{len(outcome)} studies: {counts}; reason: {body.reason}"[:1000],
    )
    return {"outcome": outcome}
