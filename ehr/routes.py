"""The FHIR R4 routes (JSON): reads and searches of ImagingStudy, Patient, Endpoint and
DiagnosticReport, each authorized like DICOMweb and audited like QIDO.

The router is built by :func:`create_router` with the function that tells the
public base URL (the DICOMweb door's, passed in by the composition root, since a
door never imports another door), so the Endpoint resource and the paging links
name the URL the client reached us under, also behind a proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from fhir.resources.R4B.bundle import Bundle

from ehr import reports as fhir_reports
from ehr import resources
from ehr.capability import capability_statement
from ehr.identity import parse_patient_resource_id
from ehr.outcome import (
    FhirError,
    FhirRoute,
    error_response,
    fhir_json_response,
    fhir_response,
    issue,
    outcome,
)
from ehr.search import (
    PATIENT_RETURN,
    SERIES_RETURN,
    STUDY_RETURN,
    Search,
    identifier_with,
    imaging_study_search,
    patient_search,
    uid,
)
from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.policy import check_study_scope
from pacs.auth.principal import Principal
from pacs.auth.scopes import allows
from pacs.query import Level, QueryError
from pacs.settings import Settings

BaseUrl = Callable[[Request, Settings], str]
SearchPrincipal = Annotated[Principal, Depends(authorize("search"))]
RetrievePrincipal = Annotated[Principal, Depends(authorize("retrieve"))]
ReportPrincipal = Annotated[Principal, Depends(authorize("report-read"))]
PREFIX = "/fhir"


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _not_found(kind: str, resource_id: str) -> FhirError:
    return FhirError(
        status.HTTP_404_NOT_FOUND, "not-found", f"{kind}/{resource_id[:64]} is unknown"
    )


def _json(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return data


def _need(principal: Principal, kind: str, permission: str) -> None:
    """Refuse (403, an OperationOutcome) a client app whose SMART scopes do not name
    ``kind`` with ``permission`` (``r`` read, ``s`` search)."""
    if not allows(principal.scopes, kind, permission):
        what = "search" if permission == "s" else "read"
        raise FhirError(
            status.HTTP_403_FORBIDDEN,
            "forbidden",
            f"the token's scopes do not allow to {what} {kind} (e.g. system/{kind}.rs)",
        )


def _study_by_id(resource_id: str) -> Search:
    """The search behind ``ImagingStudy/{id}``: the id is the Study Instance UID."""
    try:
        study_uid = uid(resource_id, "id")
    except FhirError as exc:
        raise _not_found("ImagingStudy", resource_id) from exc
    search = Search(identifier_with(STUDY_RETURN), count=1)
    search.identifier.StudyInstanceUID = study_uid
    return search


class _Door:
    """The routes' shared work: run a search on the archive, audit it, wrap it in a Bundle."""

    def __init__(self, base_url: BaseUrl) -> None:
        self.base_url = base_url

    def fhir_base(self, request: Request) -> str:
        return self.base_url(request, _archive(request).settings) + PREFIX

    def endpoint_reference(self) -> str:
        return f"Endpoint/{resources.ENDPOINT_ID}"

    def studies(
        self, request: Request, principal: Principal, search: Search
    ) -> tuple[list[dict[str, Any]], bool, set[str]]:
        """ImagingStudy resources (JSON) of one page, whether more follow, the patients shown."""
        archive = _archive(request)
        if search.no_match or search.count == 0:
            return [], False, set()
        found = archive.search(
            Level.STUDY,
            search.identifier,
            limit=search.count,
            offset=search.offset,
            study_uid_scope=principal.study_uid,
        )
        studies = found.json()
        if not studies:
            return [], found.truncated, set()
        uids = [resources.text(study, "0020000D") for study in studies]
        series_query = identifier_with(SERIES_RETURN)
        series_query.StudyInstanceUID = uids
        series = archive.search(Level.SERIES, series_query).json()
        # The instances of the page's studies, four columns read by UID from the index (not
        # through the matching engine, whose DICOM JSON for 4,000 instances took 0.36 s).
        instances: dict[str, list[dict[str, Any]]] = {}
        for stored in archive.instance_refs(uids):
            instances.setdefault(stored.series_uid, []).append(
                resources.instance_element(
                    stored.sop_instance_uid, stored.sop_class_uid, stored.instance_number
                )
            )
        by_study: dict[str, list[Any]] = {}
        for item in series:
            by_study.setdefault(resources.text(item, "0020000D"), []).append(item)
        models = [
            resources.imaging_study(
                study,
                by_study.get(resources.text(study, "0020000D"), []),
                instances,
                archive.settings,
                self.endpoint_reference(),
            )
            for study in studies
        ]
        return models, found.truncated, found.patient_ids()

    def patients(
        self, request: Request, principal: Principal, search: Search
    ) -> tuple[list[dict[str, Any]], bool, set[str]]:
        archive = _archive(request)
        if search.no_match or search.count == 0:
            return [], False, set()
        found = archive.search(
            Level.PATIENT,
            search.identifier,
            fuzzy=True,
            limit=search.count,
            offset=search.offset,
            study_uid_scope=principal.study_uid,
        )
        models = [_json(resources.patient(item, archive.settings)) for item in found.json()]
        return models, found.truncated, found.patient_ids()

    def bundle(
        self,
        request: Request,
        kind: str,
        found: list[dict[str, Any]],
        search: Search,
        more: bool,
    ) -> JSONResponse:
        """A searchset Bundle with self/next/previous links (R4 3.1.1.6) and the warnings;
        ``found`` are resources in JSON form, placed in the validated Bundle's entries."""
        base = self.fhir_base(request)
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "_offset"]

        def page(offset: int) -> str:
            query = [*params, ("_offset", str(offset))] if offset else params
            return f"{base}/{kind}" + (f"?{urlencode(query)}" if query else "")

        links = [{"relation": "self", "url": page(search.offset)}]
        if more:
            links.append({"relation": "next", "url": page(search.offset + search.count)})
        if search.offset > 0:
            previous = max(0, search.offset - max(search.count, 1))
            links.append({"relation": "previous", "url": page(previous)})
        entries: list[dict[str, Any]] = [
            {"fullUrl": f"{base}/{kind}/{item['id']}", "search": {"mode": "match"}}
            if item.get("id")
            else {"search": {"mode": "match"}}
            for item in found
        ]
        resources_json = list(found)
        if search.warnings:
            warnings = outcome([issue("warning", "not-supported", w) for w in search.warnings])
            entries.append({"search": {"mode": "outcome"}})
            resources_json.append(_json(warnings))
        data: dict[str, Any] = {"type": "searchset", "link": links, "entry": entries or None}
        if not more and search.offset == 0 and search.count > 0:
            data["total"] = len(found)  # all matches are on this one page
        bundle = _json(Bundle(**{k: v for k, v in data.items() if v is not None}))
        for entry, resource in zip(bundle.get("entry", []), resources_json, strict=True):
            entry["resource"] = resource
        return fhir_json_response(bundle)


def create_router(base_url: BaseUrl) -> APIRouter:
    """The ``/fhir`` routes; ``base_url`` gives the public base URL of a request."""
    router = APIRouter(prefix=PREFIX, route_class=FhirRoute)
    door = _Door(base_url)

    def run(
        request: Request, principal: Principal, what: str, work: Callable[[], JSONResponse]
    ) -> JSONResponse:
        archive = _archive(request)
        try:
            return work()
        except FhirError as exc:
            archive.audit.record(principal, "fhir", f"failure: {exc}", detail=what[:1000])
            return error_response(exc)
        except QueryError as exc:
            archive.audit.record(principal, "fhir", f"failure: {exc}", detail=what[:1000])
            return error_response(FhirError(status.HTTP_400_BAD_REQUEST, "invalid", str(exc)))

    def audit(request: Request, principal: Principal, what: str, patients: set[str]) -> None:
        _archive(request).audit.record(principal, "fhir", detail=what[:1000], patients=patients)

    @router.get("/metadata")
    def metadata(request: Request) -> JSONResponse:
        """The CapabilityStatement: no patient data, so clients may read it before logging in."""
        published = datetime.now(UTC).date().isoformat()
        settings = _archive(request).settings
        profiles = {
            "Patient": settings.fhir_profile_patient,
            "ImagingStudy": settings.fhir_profile_imaging_study,
            "DiagnosticReport": settings.fhir_profile_diagnostic_report,
        }
        statement = capability_statement(door.fhir_base(request), published, profiles)
        return fhir_response(statement)

    @router.get("/ImagingStudy")
    def search_imaging_studies(request: Request, principal: SearchPrincipal) -> JSONResponse:
        what = f"ImagingStudy?{request.url.query}"

        def work() -> JSONResponse:
            _need(principal, "ImagingStudy", "s")
            search = imaging_study_search(request, _archive(request).settings)
            models, more, patients = door.studies(request, principal, search)
            audit(request, principal, what, patients)
            return door.bundle(request, "ImagingStudy", models, search, more)

        return run(request, principal, what, work)

    @router.get("/ImagingStudy/{resource_id}")
    def read_imaging_study(
        resource_id: str, request: Request, principal: RetrievePrincipal
    ) -> JSONResponse:
        what = f"ImagingStudy/{resource_id}"

        def work() -> JSONResponse:
            _need(principal, "ImagingStudy", "r")
            check_study_scope(principal, resource_id)
            search = _study_by_id(resource_id)
            models, _, patients = door.studies(request, principal, search)
            if not models:
                raise _not_found("ImagingStudy", resource_id)
            _archive(request).audit.record(
                principal,
                "fhir",
                study_uid=resource_id,
                detail=what,
                patients=patients,
            )
            return fhir_json_response(models[0])

        return run(request, principal, what, work)

    @router.get("/Patient")
    def search_patients(request: Request, principal: SearchPrincipal) -> JSONResponse:
        what = f"Patient?{request.url.query}"

        def work() -> JSONResponse:
            _need(principal, "Patient", "s")
            search = patient_search(request, _archive(request).settings)
            models, more, patients = door.patients(request, principal, search)
            audit(request, principal, what, patients)
            return door.bundle(request, "Patient", models, search, more)

        return run(request, principal, what, work)

    @router.get("/Patient/{resource_id}")
    def read_patient(
        resource_id: str, request: Request, principal: RetrievePrincipal
    ) -> JSONResponse:
        what = f"Patient/{resource_id}"

        def work() -> JSONResponse:
            _need(principal, "Patient", "r")
            parsed = parse_patient_resource_id(resource_id)
            if parsed is None:
                raise _not_found("Patient", resource_id)
            search = Search(identifier_with(PATIENT_RETURN), count=1)
            search.identifier.PatientID = parsed[0]
            search.identifier.IssuerOfPatientID = parsed[1]
            models, _, patients = door.patients(request, principal, search)
            found = [m for m in models if m.get("id") == resource_id]
            if not found:
                raise _not_found("Patient", resource_id)
            _archive(request).audit.record(
                principal, "fhir", patient_id=parsed[0], detail=what, patients=patients
            )
            return fhir_json_response(found[0])

        return run(request, principal, what, work)

    @router.get("/Endpoint")
    def search_endpoints(request: Request, principal: SearchPrincipal) -> JSONResponse:
        def work() -> JSONResponse:
            _need(principal, "Endpoint", "s")
            search = Search(identifier_with(()))
            for name in request.query_params:
                if name not in ("_count", "_offset", "_format", "_id", "connection-type"):
                    search.warnings.append(f"parameter {name[:64]} is not supported")
            root = base_url(request, _archive(request).settings) + "/dicom-web"
            found = [_json(resources.endpoint(root))]
            return door.bundle(request, "Endpoint", found, search, False)

        return run(request, principal, "Endpoint", work)

    @router.get("/Endpoint/{resource_id}")
    def read_endpoint(
        resource_id: str, request: Request, principal: RetrievePrincipal
    ) -> JSONResponse:
        def work() -> JSONResponse:
            _need(principal, "Endpoint", "r")
            if resource_id != resources.ENDPOINT_ID:
                raise _not_found("Endpoint", resource_id)
            root = base_url(request, _archive(request).settings) + "/dicom-web"
            return fhir_response(resources.endpoint(root))

        return run(request, principal, f"Endpoint/{resource_id}", work)

    def report_models(
        request: Request, principal: Principal, terms: dict[str, Any], search: Search
    ) -> tuple[list[dict[str, Any]], bool]:
        """DiagnosticReport resources of one page of signed reports, and whether more follow."""
        archive = _archive(request)
        if search.no_match or search.count == 0:
            return [], False
        views, more = archive.reports.signed(
            principal, limit=search.count, offset=search.offset, **terms
        )
        base = door.base_url(request, archive.settings)
        models = []
        for view in views:
            pdf = archive.reports.pdf_bytes(view["id"])
            study = fhir_reports.study_json(archive, view["study_uid"])
            profile = archive.settings.fhir_profile_diagnostic_report
            resource = fhir_reports.diagnostic_report(view, study, pdf, base, profile)
            models.append(_json(resource))
        return models, more

    @router.get("/DiagnosticReport")
    def search_reports(request: Request, principal: ReportPrincipal) -> JSONResponse:
        """Signed reports by ``_id``, ``patient`` (or ``subject``) and ``study`` (a Study
        Instance UID, this server's own parameter), newest first."""
        what = f"DiagnosticReport?{request.url.query}"

        def work() -> JSONResponse:
            _need(principal, "DiagnosticReport", "s")
            terms, search = fhir_reports.search_terms(request)
            models, more = report_models(request, principal, terms, search)
            return door.bundle(request, "DiagnosticReport", models, search, more)

        return run(request, principal, what, work)

    @router.get("/DiagnosticReport/{resource_id}")
    def read_report(resource_id: str, request: Request, principal: ReportPrincipal) -> JSONResponse:
        what = f"DiagnosticReport/{resource_id}"

        def work() -> JSONResponse:
            _need(principal, "DiagnosticReport", "r")
            if not resource_id.isdigit() or not 0 < int(resource_id) < 2**62:
                raise _not_found("DiagnosticReport", resource_id)
            search = Search(identifier_with(()), count=1)
            models, _ = report_models(request, principal, {"report_id": int(resource_id)}, search)
            if not models:
                raise _not_found("DiagnosticReport", resource_id)
            return fhir_json_response(models[0])

        return run(request, principal, what, work)

    return router
