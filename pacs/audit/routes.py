"""Read the audit trail over HTTP: admins and auditors only, and reading is itself audited.

``GET /api/audit?patient_id=...`` answers a data-subject request: every access
to one patient's data, who, from where, when and with what outcome.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pacs.archive import Archive
from pacs.audit.dicom_xml import to_xml
from pacs.audit.trail import event_fields
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()


@router.get("/api/audit", response_model=None)
def read_audit(
    request: Request,
    principal: Annotated[Principal, Depends(authorize("audit"))],
    patient_id: str | None = None,
    study_uid: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    format: Annotated[str, Query(pattern="^(json|dicom-xml)$")] = "json",
) -> list[dict[str, Any]] | Response:
    archive: Archive = request.app.state.archive
    events = archive.audit.events(patient_id=patient_id, study_uid=study_uid, limit=limit)
    archive.audit.record(principal, "audit-read", patient_id=patient_id, study_uid=study_uid)
    if format == "dicom-xml":
        body = "".join(to_xml(event, archive.settings.ae_title) + "\n" for event in events)
        return Response(f"<AuditMessages>\n{body}</AuditMessages>\n", media_type="application/xml")
    return [event_fields(event) for event in events]
