"""WADO-URI (PS3.18 9): ``GET /wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=..``.

Older EHRs and reports link images this way. ``application/dicom`` returns
the stored object (streamed). ``image/jpeg`` (the standard's default),
``image/png`` and ``image/gif`` go through the display pipeline of
:mod:`pacs.rendering` with ``frameNumber``, ``windowCenter``/``windowWidth``,
``rows``/``columns`` and ``imageQuality``.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import StreamingResponse

from dicomweb.accept import MediaRange
from dicomweb.negotiation import DICOM, NotAcceptable, choose_instance
from dicomweb.wado import (
    ArchiveDep,
    PixelFormats,
    RetrievePrincipal,
    _byte_chunks,
    _chunks,
    _open,
    _transcoded,
    audit,
    locate_or_404,
)
from pacs.archive import Archive
from pacs.rendering import MEDIA_TYPES, RenderError, RenderOptions, render_frame
from pacs.transcode import CannotTranscode

router = APIRouter()


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"WADO-URI parameter {name} is required")
    return value


def _content_types(request: Request) -> list[str]:
    """``contentType`` is a comma-separated list in preference order; default image/jpeg."""
    raw = request.query_params.get("contentType", "")
    return [item.strip().lower() for item in raw.split(",") if item.strip()] or ["image/jpeg"]


def _number(request: Request, name: str, low: float, high: float) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"{name} must be a number in [{low}, {high}]"
        )
    return value


def _rendered(archive: Archive, key: str, request: Request, media_type: str) -> bytes:
    """One frame as a picture (PS3.18 9.1.2.1: frameNumber, window, rows/columns, quality)."""
    frame = int(_number(request, "frameNumber", 1, 1 << 31) or 1)
    center = _number(request, "windowCenter", -1e9, 1e9)
    width = _number(request, "windowWidth", 1e-6, 1e9)
    if (center is None) != (width is None):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "windowCenter and windowWidth go together")
    rows = _number(request, "rows", 1, 8192)
    columns = _number(request, "columns", 1, 8192)
    viewport = None
    if rows or columns:
        viewport = (int(columns or rows or 0), int(rows or columns or 0))
    options = RenderOptions(
        media_type,
        int(_number(request, "imageQuality", 1, 100) or 90),
        (center, width) if center is not None and width is not None else None,
        viewport,
    )
    with archive.open_seekable(key) as source:
        try:
            return render_frame(source, frame - 1, options)
        except RenderError as exc:
            code = 404 if "out of range" in str(exc) else 422
            raise HTTPException(code, str(exc)) from exc


@router.get("/wado")
def wado_uri(request: Request, archive: ArchiveDep, principal: RetrievePrincipal) -> Response:
    if request.query_params.get("requestType", "") != "WADO":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "requestType must be WADO")
    study_uid = _required(request, "studyUID")
    series_uid = _required(request, "seriesUID")
    sop_uid = _required(request, "objectUID")
    detail = "wado-uri"
    found = locate_or_404(archive, principal, detail, study_uid, series_uid, sop_uid)
    item = found[0]
    types = _content_types(request)
    if DICOM not in types and "*/*" not in types:
        image_type = next((t for t in types if t in MEDIA_TYPES), None)
        if image_type is None:
            reason = f"contentType {', '.join(types)} is not available through WADO-URI"
            audit(archive, principal, study_uid, found, detail, f"failure: {reason}")
            raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, reason)
        body = _rendered(archive, item.blob_key, request, image_type)
        audit(archive, principal, study_uid, found, f"{detail} {image_type}")
        return Response(body, media_type=image_type)
    if request.query_params.get("anonymize", "").lower() == "yes":
        raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, "anonymize=yes is not supported")
    wanted = request.query_params.get("transferSyntax")
    try:
        # transferSyntax converts as WADO-RS's transfer-syntax does (PS3.18 9.1.2.1);
        # without it the stored bytes are sent.
        chosen = choose_instance(
            [MediaRange(DICOM, {"transfer-syntax": wanted or "*"})],
            item.transfer_syntax_uid,
            single_allowed=True,
            feasible=PixelFormats(archive, study_uid, series_uid, sop_uid).feasibility(item),
        )
        if chosen.transcoded:
            data = _transcoded(archive, item, chosen.transfer_syntax)
    except (NotAcceptable, CannotTranscode) as exc:
        audit(archive, principal, study_uid, found, detail, f"failure: {exc}")
        raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, str(exc)) from exc
    if chosen.transcoded:
        audit(archive, principal, study_uid, found, f"{detail} as {chosen.transfer_syntax}")
        return StreamingResponse(
            _byte_chunks(data),
            media_type=chosen.part_content_type,
            headers={"Content-Length": str(len(data))},
        )
    fp = _open(archive, item.blob_key)
    audit(archive, principal, study_uid, found, detail)
    return StreamingResponse(
        _chunks(fp),
        media_type=chosen.part_content_type,
        headers={"Content-Length": str(item.size)},
    )
