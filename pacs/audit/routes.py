"""Read the audit trail over HTTP: admins and auditors only, and reading is itself audited.

``GET /api/audit?patient_id=...`` answers a data-subject request: every access
to one patient's data, who, from where, when and with what outcome. Records
come newest first, ``limit`` at a time; the ``Link: <...>; rel="next"`` header
(and ``before=<pk>``) pages through all of them.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.audit.dicom_xml import to_xml
from pacs.audit.filters import AuditFilter, parse_when
from pacs.audit.trail import AUDIT_FIELDS, event_fields
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()


@router.get(
    "/api/audit",
    response_model=None,
    responses={
        200: {
            "description": "records newest first; Link rel=next pages on",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {"schema": {"type": "string"}},
                "application/xml": {"schema": {"type": "string"}},
            },
        }
    },
)
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
    format: Annotated[str, Query(pattern="^(json|csv|dicom-xml)$")] = "json",
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
    if format == "csv":
        headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return Response(_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse(rows, headers=headers)


CSV_COLUMNS = ["pk", *AUDIT_FIELDS]


def _csv(rows: list[dict[str, Any]]) -> str:
    """Records as CSV for a spreadsheet: UTF-8 with a byte-order mark (Excel reads the
    Vietnamese names right), and no cell a spreadsheet would run as a formula."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return "\ufeff" + out.getvalue()


def _cell(value: object) -> object:
    # OWASP CSV injection: a user name or detail such as "=HYPERLINK(...)" stays text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class ChainStatus(BaseModel):
    """What ``pacs audit verify`` says, for the audit page."""

    intact: bool
    broken_at: int | None = Field(description="the first record that does not follow")
    reason: str | None
    records: int
    newest: int | None = Field(description="the newest record's number")
    checkpoint_pk: int | None = Field(description="the record the signed checkpoint names")
    checkpoint_at: str | None
    checked_at: datetime


@router.get("/api/audit/verify")
def verify_audit(
    request: Request,
    principal: Annotated[Principal, Depends(authorize("audit"))],
) -> ChainStatus:
    """Walk the hash chain and compare it with the checkpoint kept outside the database."""
    archive: Archive = request.app.state.archive
    broken = archive.audit.verify()
    summary = archive.audit.summary()
    outcome = "success" if broken is None else f"failure: broken at {broken.pk}"
    archive.audit.record(principal, "audit-verify", outcome)
    return ChainStatus(
        intact=broken is None,
        broken_at=broken.pk if broken else None,
        reason=broken.reason if broken else None,
        checked_at=datetime.now(UTC),
        records=summary.records,
        newest=summary.newest,
        checkpoint_pk=summary.checkpoint_pk,
        checkpoint_at=summary.checkpoint_at,
    )
