"""``GET /api/deletions``: what was deleted, by whom, why, and when its bytes go (administrators).

Deletes themselves are DICOMweb ``DELETE`` requests (see :mod:`dicomweb.delete`);
this lists their records, newest first, purged ones included.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]


@router.get("/api/deletions")
def list_deletions(
    request: Request,
    principal: Admin,
    study_uid: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Deletion records, newest first (optionally of one study)."""
    archive: Archive = request.app.state.archive
    found = archive.deletions(study_uid, limit)
    return {"deletions": [deletion.as_json() for deletion in found]}
