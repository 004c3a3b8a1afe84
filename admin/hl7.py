"""``GET /api/hl7/messages``: every HL7 message received, newest first (administrators).

Each entry is the message as received (raw text), what the door understood of
it, the ACK code sent and the reason of a refusal: what an administrator needs
to answer "did the HIS send it, and what did we do with it?".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]


@router.get("/api/hl7/messages")
def list_messages(
    request: Request,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """A page of kept HL7 messages, newest first, and the total."""
    archive: Archive = request.app.state.archive
    messages, total = archive.workflow.messages(limit, offset)
    archive.audit.record(principal, "hl7-messages", detail=f"offset={offset} limit={limit}")
    return {"total": total, "messages": [message.as_json() for message in messages]}
