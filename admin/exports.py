"""``/api/exports``: studies onto ZIP or DICOMDIR media, optionally de-identified, as jobs.

``POST /api/exports`` with ``{"study_uids": [...], "media": "dicomdir",
"deidentify": true, "retain_dates": false, "retain_device": false,
"viewer": true}`` answers 202 with the export (``status`` queued);
``GET /api/exports/{id}`` shows its progress (``done`` of ``total`` instances);
``GET /api/exports/{id}/download`` sends the ZIP once ``done`` (409 before);
``DELETE`` removes it. De-identified exports follow PS3.15 Annex E's Basic
Profile with a consistent pseudonym per patient (see :mod:`pacs.dicom.deidentify`).
DICOMDIR media carry the offline viewer unless ``viewer`` is false
(:mod:`pacs.archive.offline_viewer`). Users see their own exports,
administrators every one. Every step is audited.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.archive.errors import NotFound
from pacs.archive.exports import MAX_STUDIES, ExportView, InvalidExport
from pacs.auth.http import authorize
from pacs.auth.principal import Principal, Role

router = APIRouter()

Exporter = Annotated[Principal, Depends(authorize("export"))]


class ExportRequest(BaseModel):
    study_uids: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=MAX_STUDIES
    )
    media: Literal["zip", "dicomdir"] = "zip"
    deidentify: bool = False
    retain_dates: bool = False
    retain_device: bool = False
    viewer: bool = True  # DICOMDIR media: the offline viewer (INDEX.HTM) beside DICOMDIR


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _own(principal: Principal, archive: Archive, export_id: int) -> ExportView:
    """The export, when this principal may see it (its creator, or an administrator)."""
    if not 0 < export_id < 2**31:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no export {export_id}")
    try:
        view = archive.exports.get(export_id)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    if principal.role != Role.ADMIN and view.created_by != principal.name:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no export {export_id}")
    return view


@router.post("/api/exports", status_code=status.HTTP_202_ACCEPTED)
def create_export(request: Request, principal: Exporter, body: ExportRequest) -> dict[str, Any]:
    """Queue an export of ``study_uids``; the export, to follow with GET."""
    try:
        view = _archive(request).exports.create(
            principal,
            body.study_uids,
            body.media,
            deidentify=body.deidentify,
            retain_dates=body.retain_dates,
            retain_device=body.retain_device,
            viewer=body.viewer,
        )
    except InvalidExport as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return view.as_json()


@router.get("/api/exports")
def list_exports(request: Request, principal: Exporter) -> dict[str, Any]:
    """The caller's exports (every export for an administrator), newest first."""
    mine = None if principal.role == Role.ADMIN else principal.name
    return {"exports": [v.as_json() for v in _archive(request).exports.listed(mine)]}


@router.get("/api/exports/{export_id}")
def get_export(request: Request, principal: Exporter, export_id: int) -> dict[str, Any]:
    """The export and its progress."""
    return _own(principal, _archive(request), export_id).as_json()


@router.get("/api/exports/{export_id}/download")
def download_export(request: Request, principal: Exporter, export_id: int) -> FileResponse:
    """The finished export as a ZIP; 409 while it is not done."""
    archive = _archive(request)
    view = _own(principal, archive, export_id)
    try:
        path = archive.exports.path(export_id)
    except InvalidExport as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    for study_uid in view.studies:
        archive.audit.record(
            principal, "export-download", study_uid=study_uid, detail=f"export={export_id}"
        )
    name = f"export-{export_id}-{view.media}.zip"
    return FileResponse(path, media_type="application/zip", filename=name)


@router.delete("/api/exports/{export_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_export(request: Request, principal: Exporter, export_id: int) -> Response:
    """Remove the export's file and record."""
    archive = _archive(request)
    view = _own(principal, archive, export_id)
    archive.exports.remove(export_id)
    for study_uid in view.studies:
        archive.audit.record(
            principal, "export-delete", study_uid=study_uid, detail=f"export={export_id}"
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
