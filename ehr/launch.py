"""Opening images from the EMR: IHE Invoke Image Display (IID, RAD TF-2 4.106) and per-study
links that the HIS mints for its users.

``GET /IHEInvokeImageDisplay?requestType=STUDY&studyUID=...`` (or ``accessionNumber``)
sends an authenticated user to the viewer on that study; ``requestType=PATIENT&patientID=``
(HL7 CX, ``id^^^issuer``) lists that patient's studies, each opening in the viewer. The
HIS's link API reuses the share grants of :mod:`pacs.auth.grants` (the signed
``/s/<token>`` link, bound to one study, expiring, revocable), with a short life; every
opening of such a link is audited by the share landing as ``share-open``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from pydicom.dataset import Dataset

from ehr.messages import text
from ehr.outcome import FhirError
from ehr.params import DateRange
from ehr.resources import first, values
from ehr.search import STUDY_RETURN, identifier_with, uid
from pacs.archive import Archive
from pacs.auth import grants
from pacs.auth.http import authorize, server_key
from pacs.auth.policy import check_study_scope
from pacs.auth.principal import Principal
from pacs.query import Level, QueryError
from pacs.settings import Settings

BaseUrl = Callable[[Request, Settings], str]
RetrievePrincipal = Annotated[Principal, Depends(authorize("retrieve"))]
LaunchPrincipal = Annotated[Principal, Depends(authorize("launch"))]
MAX_STUDIES = 200  # a patient list page; IID's mostRecentResults may ask for fewer
MAX_LINK_MINUTES = 7 * 24 * 60


class LinkRequest(BaseModel):
    """A per-study link for one HIS user: who it is for (recorded), and how long it lives."""

    study_uid: str = Field(max_length=64)
    user: str = Field(default="", max_length=64)
    minutes: int = Field(default=60, ge=1, le=MAX_LINK_MINUTES)


def viewer_url(study_uid: str) -> str:
    return f"/viewer/?StudyInstanceUIDs={quote(study_uid)}"


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _bad(request: Request, reason: str) -> HTMLResponse:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>PACS</title></head><body>"
        f"<h1>{html.escape(text(request, 'bad_request'))}</h1><p>{html.escape(reason)}</p>"
        "</body></html>"
    )
    return HTMLResponse(body, status_code=status.HTTP_400_BAD_REQUEST)


def _patient(value: str) -> tuple[str, str | None]:
    """PatientID and issuer of an HL7 CX value (``id^^^namespace&oid&ISO``) or a plain ID."""
    parts = value.split("^")
    authority = parts[3].split("&") if len(parts) > 3 else []
    issuer = next((a for a in authority if a and a != "ISO"), None)
    return parts[0].strip(), issuer


def _study_query(request: Request) -> tuple[Dataset, int | None]:
    """The identifier and limit of an IID request; ValueError says what is wrong."""
    params = request.query_params
    kind = params.get("requestType", "")
    query = identifier_with(STUDY_RETURN)
    limit: int | None = MAX_STUDIES
    if kind == "STUDY":
        uids, accession = params.get("studyUID", ""), params.get("accessionNumber", "")
        if bool(uids) == bool(accession):
            raise ValueError("requestType=STUDY needs studyUID or accessionNumber (one of them)")
        if uids:
            try:
                query.StudyInstanceUID = [uid(u, "studyUID") for u in uids.split(",") if u]
            except FhirError as exc:
                raise ValueError(exc.diagnostics) from exc
        else:
            if any(c in accession for c in "*?\\") or len(accession) > 64:
                raise ValueError("accessionNumber: one accession number")
            query.AccessionNumber = accession
    elif kind == "PATIENT":
        patient_id, issuer = _patient(params.get("patientID", ""))
        if not patient_id or any(c in patient_id for c in "*?\\") or len(patient_id) > 64:
            raise ValueError("requestType=PATIENT needs patientID (HL7 CX: id^^^issuer)")
        item = Dataset()
        item.PatientID = patient_id
        if issuer:
            item.IssuerOfPatientID = issuer[:64]
        query.OtherPatientIDsSequence = [item]
        dates = DateRange()
        try:
            for name, prefix in (("lowerDateTime", "ge"), ("upperDateTime", "le")):
                if params.get(name):
                    dates.narrow(prefix + params[name][:10])
        except FhirError as exc:
            raise ValueError(exc.diagnostics) from exc
        if dates.low or dates.high:
            query.StudyDate = dates.dicom() if not dates.empty else "99991231"
        if params.get("modalitiesInStudy"):
            query.ModalitiesInStudy = [m for m in params["modalitiesInStudy"].split(",") if m]
        if params.get("mostRecentResults"):
            if not params["mostRecentResults"].isdigit():
                raise ValueError("mostRecentResults: a number")
            limit = max(1, min(int(params["mostRecentResults"]), MAX_STUDIES))
    else:
        raise ValueError("requestType must be STUDY or PATIENT")
    return query, limit


def _list_page(request: Request, studies: list[dict[str, dict[str, Any]]]) -> str:
    def cell(value: object) -> str:
        return f"<td>{html.escape(str(value or ''))}</td>"

    name = ""
    if studies:
        patient_name = first(studies[0], "00100010")
        if isinstance(patient_name, dict):
            name = str(patient_name.get("Alphabetic", "")).replace("^", " ")
    rows = []
    for study in studies:
        study_uid = str(first(study, "0020000D"))
        day = str(first(study, "00080020") or "")
        when = f"{day[6:8]}/{day[4:6]}/{day[:4]}" if len(day) == 8 else day
        modalities = ", ".join(str(m) for m in values(study, "00080061"))
        link = html.escape(viewer_url(study_uid), quote=True)
        rows.append(
            "<tr>"
            + cell(when)
            + cell(modalities)
            + cell(first(study, "00081030"))
            + cell(first(study, "00080050"))
            + f"<td><a href='{link}'>{html.escape(text(request, 'open'))}</a></td></tr>"
        )
    head = "".join(
        f"<th>{html.escape(text(request, key))}</th>"
        for key in ("date", "modality", "description", "accession")
    )
    table = (
        f"<table><tr>{head}<th></th></tr>{''.join(rows)}</table>"
        if rows
        else f"<p>{html.escape(text(request, 'no_studies'))}</p>"
    )
    title = f"{text(request, 'studies_of')} {name}".strip()
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{table}</body></html>"
    )


def create_router(base_url: BaseUrl) -> APIRouter:
    """The IID route and the HIS's link API; ``base_url`` gives a request's public base URL."""
    router = APIRouter()

    @router.get("/IHEInvokeImageDisplay")
    def invoke_image_display(request: Request, principal: RetrievePrincipal) -> Response:
        """Open the viewer on a study, or list a patient's studies (IID Invoke Image Display)."""
        archive = _archive(request)
        query_text = str(request.url.query)[:1000]
        try:
            query, limit = _study_query(request)
            found = archive.search(
                Level.STUDY, query, limit=limit, study_uid_scope=principal.study_uid
            )
        except (ValueError, QueryError) as exc:
            archive.audit.record(principal, "iid", f"failure: {exc}", detail=query_text)
            return _bad(request, str(exc))
        studies = found.json()
        archive.audit.record(principal, "iid", detail=query_text, patients=found.patient_ids())
        if request.query_params.get("requestType") == "STUDY" and len(studies) == 1:
            return RedirectResponse(viewer_url(str(first(studies[0], "0020000D"))), 303)
        page = _list_page(request, studies)
        code = status.HTTP_200_OK if studies else status.HTTP_404_NOT_FOUND
        return HTMLResponse(page, status_code=code, headers={"Cache-Control": "no-store"})

    @router.post("/api/ehr/links", status_code=201)
    def mint_link(
        body: LinkRequest, request: Request, principal: LaunchPrincipal
    ) -> dict[str, str]:
        """A signed, expiring link that opens one study in the viewer, for one HIS user.

        Returns ``url`` (``/s/<token>``, the share landing), ``grant_id`` (to revoke it with
        ``DELETE /api/shares/{grant_id}``) and ``expires_at``. Raises 404 for an unknown study.
        """
        archive = _archive(request)
        check_study_scope(principal, body.study_uid)
        instances = archive.locate(study_uid=body.study_uid)
        if not instances:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such study")
        for_whom = f"{principal.name} for {body.user}" if body.user else principal.name
        info = archive.auth.create_grant(body.study_uid, for_whom[:64], body.minutes / 1440)
        archive.audit.record(
            principal,
            "link-create",
            patient_id=instances[0].patient_id,
            study_uid=body.study_uid,
            detail=f"grant {info.grant_id} for {body.user!r} until {info.expires_at.isoformat()}",
        )
        token = grants.link_token(server_key(request), info.grant_id)
        base = base_url(request, archive.settings)
        return {
            "url": f"{base}/s/{quote(token, safe='.-_')}",
            "grant_id": info.grant_id,
            "expires_at": info.expires_at.isoformat(),
        }

    return router
