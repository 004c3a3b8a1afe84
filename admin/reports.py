"""The reporting door (issue 17): drafts, signing, addenda, PDF, XML4, templates, phrases.

``POST /api/studies/{uid}/reports`` creates a draft (``{"findings", "conclusion",
"template"}``), ``PUT /api/reports/{id}`` saves it again (the editor's autosave),
``POST /api/reports/{id}/sign`` signs it with ``{"passphrase"}``, ``/approve`` is the
second reader's signature, ``/addenda`` starts an addendum to a signed report.
Radiologists and administrators write reports (operation ``report``); clinicians and the
HIS read them (``report-read``). The domain (:mod:`pacs.reports`) audits every step.
Errors are answered in the reader's language (``pacs.lang`` cookie, Accept-Language).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal, Role
from pacs.i18n import negotiate, translate
from pacs.reports.errors import (
    InvalidReport,
    ReportConflict,
    ReportNotFound,
    SigningError,
)
from pacs.reports.service import ReportText

router = APIRouter()

Writer = Annotated[Principal, Depends(authorize("report"))]
Reader = Annotated[Principal, Depends(authorize("report-read"))]
T = TypeVar("T")
TEXT = 20_000


class ReportBody(BaseModel):
    findings: str | None = Field(default=None, max_length=TEXT)
    conclusion: str | None = Field(default=None, max_length=TEXT)
    recommendations: str | None = Field(default=None, max_length=TEXT)
    key_images: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=16
    )
    template: int | None = Field(default=None, ge=1, le=2**62)
    language: str | None = Field(default=None, max_length=2)

    def text(self) -> ReportText:
        return ReportText(**self.model_dump())


class SignBody(BaseModel):
    passphrase: str = Field(max_length=1024)


class TemplateBody(BaseModel):
    name: str | None = Field(default=None, max_length=128)
    modality: str | None = Field(default=None, max_length=16)
    body_part: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=2)
    findings: str | None = Field(default=None, max_length=TEXT)
    conclusion: str | None = Field(default=None, max_length=TEXT)
    recommendations: str | None = Field(default=None, max_length=TEXT)


class PhraseBody(BaseModel):
    text: str = Field(max_length=TEXT)


ReportId = Annotated[int, Query(ge=1, le=2**62)]


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _answer(request: Request, work: Callable[[], T]) -> T:
    """Run ``work``; the domain's refusals as 4xx in the reader's language."""
    lang = negotiate(request.cookies, request.headers.get("accept-language"))
    try:
        return work()
    except ReportNotFound as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, translate("reports.not_found", lang)
        ) from exc
    except ReportConflict as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{translate('reports.conflict', lang)} ({exc})"
        ) from exc
    except SigningError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            translate("reports.signing_failed", lang, reason=str(exc)),
        ) from exc
    except InvalidReport as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            translate("reports.invalid", lang, reason=str(exc)),
        ) from exc


def _check_id(value: int) -> int:
    if not 0 < value < 2**62:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report")
    return value


@router.post("/api/studies/{study}/reports", status_code=201)
def create_report(
    request: Request, principal: Writer, study: str, body: ReportBody
) -> dict[str, Any]:
    """A new draft report of a stored study; returns it with its ``id``."""
    reports = _archive(request).reports
    return _answer(request, lambda: reports.create(principal, study, body.text()))


@router.get("/api/studies/{study}/reports")
def study_reports(request: Request, principal: Reader, study: str) -> dict[str, Any]:
    """Every report version of a study, oldest first (a reader's request counts as opening)."""
    reports = _archive(request).reports
    opening = principal.role in (Role.RADIOLOGIST, Role.ADMIN)
    views = _answer(request, lambda: reports.of_study(principal, study, opening=opening))
    return {"study_uid": study, "reports": views}


@router.get("/api/studies/{study}/reading-times")
def reading_times(request: Request, principal: Reader, study: str) -> dict[str, Any]:
    """Turnaround of the study's reading: acquired, first opened, first draft, signed."""
    archive = _archive(request)
    times = archive.reports.times(study)
    archive.audit.record(principal, "report-times", study_uid=study)
    if times is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no reading recorded for this study")
    return times


@router.get("/api/reports/{report_id}")
def get_report(request: Request, principal: Reader, report_id: int) -> dict[str, Any]:
    reports = _archive(request).reports
    return _answer(request, lambda: reports.get(principal, _check_id(report_id)))


@router.put("/api/reports/{report_id}")
def update_report(
    request: Request, principal: Writer, report_id: int, body: ReportBody
) -> dict[str, Any]:
    """Save a draft again (autosave); a signed report answers 409."""
    reports = _archive(request).reports
    return _answer(request, lambda: reports.update(principal, _check_id(report_id), body.text()))


@router.post("/api/reports/{report_id}/sign")
def sign_report(
    request: Request, principal: Writer, report_id: int, body: SignBody
) -> dict[str, Any]:
    """Sign with the reader's certificate; the SR and the PDF go into the study."""
    reports = _archive(request).reports
    return _answer(request, lambda: reports.sign(principal, _check_id(report_id), body.passphrase))


@router.post("/api/reports/{report_id}/approve")
def approve_report(
    request: Request, principal: Writer, report_id: int, body: SignBody
) -> dict[str, Any]:
    """The second reader's signature (``PACS_REPORT_SECOND_READER``): the report is final."""
    reports = _archive(request).reports
    return _answer(
        request, lambda: reports.approve(principal, _check_id(report_id), body.passphrase)
    )


@router.post("/api/reports/{report_id}/addenda", status_code=201)
def add_addendum(
    request: Request, principal: Writer, report_id: int, body: ReportBody
) -> dict[str, Any]:
    """A new draft amending signed report ``report_id`` (which never changes)."""
    reports = _archive(request).reports
    return _answer(request, lambda: reports.addendum(principal, _check_id(report_id), body.text()))


@router.get("/api/reports/{report_id}/pdf")
def report_pdf(request: Request, principal: Reader, report_id: int) -> Response:
    """The signed PDF (PAdES), byte for byte as signed."""
    reports = _archive(request).reports
    data = _answer(request, lambda: reports.pdf(principal, _check_id(report_id)))
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="report-{report_id}.pdf"'},
    )


@router.get("/api/reports/{report_id}/xml4")
def report_xml4(request: Request, principal: Reader, report_id: int) -> Response:
    """QĐ 130 table 4 fields of the signed report, for the HIS's insurance claim."""
    reports = _archive(request).reports
    text = _answer(request, lambda: reports.xml4(principal, _check_id(report_id)))
    return Response(text, media_type="application/xml; charset=utf-8")


@router.get("/api/report-templates")
def list_templates(
    request: Request,
    principal: Writer,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    body_part: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Templates for a modality (and body part: its own and those for any)."""
    return {"templates": _archive(request).reports.templates(modality, body_part)}


@router.post("/api/report-templates", status_code=201)
def create_template(request: Request, principal: Writer, body: TemplateBody) -> dict[str, Any]:
    if not (body.name and body.modality):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "a template needs a name and a modality"
        )
    reports = _archive(request).reports
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    return _answer(request, lambda: reports.save_template(principal, values))


@router.put("/api/report-templates/{template_id}")
def update_template(
    request: Request, principal: Writer, template_id: int, body: TemplateBody
) -> dict[str, Any]:
    reports = _archive(request).reports
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    return _answer(request, lambda: reports.save_template(principal, values, template_id))


@router.delete("/api/report-templates/{template_id}", status_code=204)
def delete_template(request: Request, principal: Writer, template_id: int) -> Response:
    reports = _archive(request).reports
    _answer(request, lambda: reports.delete_template(principal, template_id))
    return Response(status_code=204)


@router.get("/api/report-phrases")
def list_phrases(request: Request, principal: Writer) -> dict[str, Any]:
    """The caller's own macros and saved phrases."""
    return {"phrases": _archive(request).reports.phrases(principal.name)}


@router.put("/api/report-phrases/{name}", status_code=204)
def save_phrase(request: Request, principal: Writer, name: str, body: PhraseBody) -> Response:
    if not 0 < len(name) <= 64:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "a phrase name has 1 to 64 characters"
        )
    reports = _archive(request).reports
    _answer(request, lambda: reports.save_phrase(principal.name, name, body.text))
    return Response(status_code=204)


@router.delete("/api/report-phrases/{name}", status_code=204)
def delete_phrase(request: Request, principal: Writer, name: str) -> Response:
    if not _archive(request).reports.delete_phrase(principal.name, name[:64]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such phrase")
    return Response(status_code=204)
