"""The reading door (issue 17 item 3): the radiologists' worklist, claims and priors.

``GET /api/reading/worklist`` lists what waits to be read (STAT on top, unread first,
oldest first) with each study's reading state, priority and who is reading it;
``POST /api/studies/{uid}/claim`` claims a study (409 while another radiologist holds
it; an administrator may take it over with ``{"take_over": true}``), ``DELETE`` gives
it back; ``GET /api/studies/{uid}/priors`` lists the patient's other studies;
``GET /api/studies/{uid}/instances/{sop}/sr`` gives an SR document as a text tree. The
domain (:mod:`pacs.reading`) audits each call. Refusals are answered in the reader's
language (``pacs.lang`` cookie, Accept-Language).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.archive.errors import LegalHoldActive
from pacs.auth.http import authorize
from pacs.auth.policy import check_study_scope
from pacs.auth.principal import Principal
from pacs.i18n import negotiate, translate
from pacs.query import QueryError
from pacs.reading import STATUSES, ClaimConflict, NotClaimed, WorklistFilter, sr_text
from pacs.reading import measurements as saved

router = APIRouter()
Reader = Annotated[Principal, Depends(authorize("report"))]
Searcher = Annotated[Principal, Depends(authorize("search"))]
Retriever = Annotated[Principal, Depends(authorize("retrieve"))]
MAX_PAGE = 100
PRIORITIES = ("STAT", "HIGH", "ROUTINE")


class ClaimBody(BaseModel):
    take_over: bool = False


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _lang(request: Request) -> str:
    return negotiate(request.cookies, request.headers.get("accept-language"))


def _choices(text: str, allowed: tuple[str, ...], what: str, lang: str) -> frozenset[str]:
    """A comma-separated filter, each value one of ``allowed``, else 400 naming them."""
    values = frozenset(v.strip() for v in text.split(",") if v.strip())
    unknown = sorted(values - set(allowed))
    if unknown:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            translate("reading.bad_filter", lang, what=what, values=", ".join(allowed)),
        )
    return values


@router.get("/api/reading/worklist")
def reading_worklist(
    request: Request,
    principal: Reader,
    status_: Annotated[str, Query(alias="status", max_length=128)] = "",
    priority: Annotated[str, Query(max_length=64)] = "",
    modality: Annotated[str, Query(max_length=16)] = "",
    date: Annotated[str, Query(max_length=17)] = "",
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> dict[str, Any]:
    """A page of the reading worklist in reading order, with the total.

    ``status`` and ``priority`` take comma-separated values; ``date`` a DICOM date or
    range (default: the last 30 days); ``mine``: claimed by me, or my drafts.
    """
    lang = _lang(request)
    wanted = WorklistFilter(
        date=date,
        modality=modality,
        status=_choices(status_, STATUSES, "status", lang),
        priority=_choices(priority.upper(), PRIORITIES, "priority", lang),
        mine=mine,
    )
    archive = _archive(request)
    try:
        page = archive.reading.worklist(principal, wanted, limit, offset)
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    # Studies received from another facility, by Study Instance UID: where they came from.
    uids = [
        str((item["study"].get("0020000D", {}).get("Value") or [""])[0]) for item in page["items"]
    ]
    page["external"] = archive.routing.external.origins(uids)
    return page


def _study(archive: Archive, principal: Principal, study: str, lang: str) -> dict[str, Any]:
    """The study's DICOM JSON as the study list shows it, or 404."""
    check_study_scope(principal, study)
    found = archive.reading.study(study)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, translate("reading.no_study", lang))
    return found


@router.post("/api/studies/{study}/claim")
def claim_study(
    request: Request, principal: Reader, study: str, body: ClaimBody | None = None
) -> dict[str, Any]:
    """Claim ``study`` for reading (or renew my claim); 409 while someone else reads it."""
    archive, lang = _archive(request), _lang(request)
    _study(archive, principal, study, lang)
    try:
        return archive.reading.claim(principal, study, take_over=bool(body and body.take_over))
    except ClaimConflict as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            translate(
                "reading.claimed",
                lang,
                user=exc.holder,
                until=exc.expires_at.isoformat(timespec="minutes"),
            ),
        ) from exc


@router.delete("/api/studies/{study}/claim", status_code=204)
def release_study(request: Request, principal: Reader, study: str) -> None:
    """Give my claim on ``study`` back (an administrator may release anyone's)."""
    try:
        _archive(request).reading.release(principal, study)
    except NotClaimed as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, translate("reading.not_claimed", _lang(request))
        ) from exc


@router.get("/api/studies/{study}/priors")
def study_priors(request: Request, principal: Searcher, study: str) -> dict[str, Any]:
    """The patient's other studies, newest first, to read beside ``study``."""
    archive, lang = _archive(request), _lang(request)
    current = _study(archive, principal, study, lang)
    if principal.study_uid:  # a share link opens its one study, never the others
        return {"study": current, "priors": []}
    return {"study": current, "priors": archive.reading.priors(principal, current)}


class DrawnBody(BaseModel):
    kind: str = Field(max_length=16)
    value: float
    label: str = Field(default="", max_length=64)
    sop_instance_uid: str = Field(max_length=64)
    frame: int | None = Field(default=None, ge=1, le=1_000_000)
    graphic_type: str = Field(max_length=16)
    points: list[tuple[float, float]] = Field(max_length=saved.MAX_POINTS)


class MeasurementsBody(BaseModel):
    measurements: list[DrawnBody] = Field(max_length=saved.MAX_MEASUREMENTS)


@router.post("/api/studies/{study}/measurements", status_code=201)
def save_measurements(
    request: Request, response: Response, principal: Reader, study: str, body: MeasurementsBody
) -> dict[str, Any]:
    """Store the viewer's measurements as a new DICOM SR measurement report (TID 1500) in
    ``study``; returns its UIDs. An empty set withdraws the study's reports (IOCM
    rejection; 200, the UIDs withdrawn): the last measurement deleted stays deleted.
    422 names what cannot be saved, 409 a study under a legal hold."""
    archive, lang = _archive(request), _lang(request)
    _study(archive, principal, study, lang)
    drawn = [saved.Drawn(**item.model_dump()) for item in body.measurements]
    try:
        result = saved.save(archive, principal, study, drawn)
    except saved.MeasurementError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            translate(
                "reading.bad_measurements",
                lang,
                reason=translate(f"reading.measurement_{exc.key}", lang, **exc.params),
            ),
        ) from exc
    except LegalHoldActive as exc:  # audited by the rejection
        raise HTTPException(
            status.HTTP_409_CONFLICT, translate("reading.measurements_on_hold", lang)
        ) from exc
    if not drawn:
        response.status_code = status.HTTP_200_OK  # nothing stored; the rejection audited
        return result
    archive.audit.record(
        principal, "store", study_uid=study,
        detail=f"measurement report {result['sop_instance_uid']}: {len(drawn)} measurements",
    )  # fmt: skip
    return result


@router.get("/api/studies/{study}/measurements")
def latest_measurements(request: Request, principal: Retriever, study: str) -> dict[str, Any]:
    """The study's newest measurement report as the viewer draws it (404 when none)."""
    archive, lang = _archive(request), _lang(request)
    _study(archive, principal, study, lang)
    found = saved.latest(archive, study)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, translate("reading.no_measurements", lang))
    archive.audit.record(principal, "wado", study_uid=study, detail="measurements")
    return found


@router.get("/api/studies/{study}/instances/{instance}/sr")
def sr_document(
    request: Request, principal: Retriever, study: str, instance: str
) -> dict[str, Any]:
    """The SR document ``instance`` of ``study`` as the viewer shows it: its header and its
    content tree with each value as text (404 for anything but an SR of the study)."""
    archive, lang = _archive(request), _lang(request)
    _study(archive, principal, study, lang)
    try:
        tree = sr_text.document(archive, study, instance)
    except sr_text.TooLarge as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, translate("reading.document_too_large", lang)
        ) from exc
    if tree is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, translate("reading.no_document", lang))
    archive.audit.record(principal, "wado", study_uid=study, detail=f"SR text {instance}")
    return tree
