"""Read the audit trail over HTTP: admins and auditors only, and reading is itself audited.

``GET /api/audit?patient_id=...`` answers a data-subject request: every access
to one patient's data, who, from where, when and with what outcome. Records
come newest first, ``limit`` at a time; the ``Link: <...>; rel="next"`` header
(and ``before=<pk>``) pages through all of them.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse

from pacs.archive import Archive
from pacs.audit.dicom_xml import to_xml
from pacs.audit.filters import AuditFilter, parse_when
from pacs.audit.trail import event_fields
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()


@router.get("/api/audit", response_model=None)
def read_audit(
    request: Request,
    principal: Annotated[Principal, Depends(authorize("audit"))],
    user: Annotated[str | None, Query(max_length=128)] = None,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    study_uid: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    format: Annotated[str, Query(pattern="^(json|dicom-xml)$")] = "json",
) -> Response:
    archive: Archive = request.app.state.archive
    try:
        where = AuditFilter(
            user=user,
            patient_id=patient_id,
            study_uid=study_uid,
            action=action,
            since=parse_when(since),
            until=parse_when(until, end=True),
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    events = archive.audit.events(where, before=before, limit=limit, newest_first=True)
    archive.audit.record(
        principal,
        "audit-read",
        patient_id=patient_id,
        study_uid=study_uid,
        detail=str(request.url.query)[:1000],
    )
    headers = {}
    if len(events) == limit:
        params = {k: v for k, v in request.query_params.items() if k != "before"}
        params["before"] = str(events[-1].pk)
        headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    if format == "dicom-xml":
        body = "".join(to_xml(event, archive.settings.ae_title) + "\n" for event in events)
        return Response(
            f"<AuditMessages>\n{body}</AuditMessages>\n",
            media_type="application/xml",
            headers=headers,
        )
    rows: list[dict[str, Any]] = [{"pk": event.pk, **event_fields(event)} for event in events]
    return JSONResponse(rows, headers=headers)
