"""DiagnosticReport (FHIR R4B) from a signed report of the reporting domain.

``status``: ``final`` (``preliminary`` while a second reader's approval is pending,
``appended`` once an addendum was signed); ``conclusion`` the report's conclusion;
``presentedForm`` the signed PDF (its URL, size and SHA-1, as R4 Attachment asks);
``imagingStudy`` the study; ``performer`` and ``resultsInterpreter`` the signer with the
health-professional code; ``issued`` the signing time.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from fastapi import Request
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from ehr import resources
from ehr.identity import parse_patient_resource_id
from ehr.params import bad
from ehr.search import MAX_COUNT, Search, identifier_with
from pacs.archive import Archive

LOINC = "http://loinc.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
PRACTITIONER_CODE = "urn:pacs:health-professional-code"
SEARCH_PARAMETERS = ("_id", "patient", "subject", "study", "_count", "_offset", "_format")


def diagnostic_report(
    report: dict[str, Any],
    study: dict[str, Any] | None,
    pdf: bytes | None,
    base: str,
    profile: str = "",
) -> DiagnosticReport:
    """The resource of one signed report; ``study`` its study's stored DICOM JSON.

    ``profile`` (VN Core's imaging DiagnosticReport) is declared only when the report
    has its subject, which that profile requires (1..1)."""
    status = "preliminary" if report["status"] == "awaiting-approval" else "final"
    if report["addenda"]:
        status = "appended"
    signature = report["signature"] or {}
    signer = {
        "display": signature.get("signer", ""),
        "identifier": {
            "system": PRACTITIONER_CODE,
            "value": signature.get("professional_code") or "-",
        },
    }
    data: dict[str, Any] = {
        "id": str(report["id"]),
        "status": status,
        "category": [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}],
        "code": {
            "coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}]
        },
        "imagingStudy": [{"reference": f"ImagingStudy/{report['study_uid']}"}],
        "performer": [signer],
        "resultsInterpreter": [signer],
        "issued": signature.get("signed_at"),
    }
    if study is not None:
        data["subject"] = resources.patient_reference(study)
        if profile:
            data["meta"] = {"profile": [profile]}
    if report["conclusion"]:
        data["conclusion"] = report["conclusion"]
    if pdf is not None:
        data["presentedForm"] = [
            {
                "contentType": "application/pdf",
                "language": report["language"],
                "url": f"{base}/api/reports/{report['id']}/pdf",
                "size": len(pdf),
                "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode(),
                "title": f"report-{report['id']}.pdf",
                "creation": signature.get("signed_at"),
            }
        ]
    return DiagnosticReport(**{k: v for k, v in data.items() if v is not None})


def study_json(archive: Archive, study_uid: str) -> dict[str, Any] | None:
    """The stored DICOM JSON of one of the study's instances (its patient and study data)."""
    found = archive.metadata(study_uid)
    if not found:
        return None
    item: dict[str, Any] = json.loads(found[0][1])
    return item


def search_terms(request: Request) -> tuple[dict[str, Any], Search]:
    """Keyword arguments of the domain's ``signed`` query, and the search (paging, warnings)."""
    search = Search(identifier_with(()))
    try:
        search.count = min(max(int(request.query_params.get("_count", 20)), 0), MAX_COUNT)
        search.offset = max(int(request.query_params.get("_offset", 0)), 0)
    except ValueError as exc:
        raise bad("_count and _offset must be integers") from exc
    terms: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name == "_id":
            if not value.isdigit() or not 0 < int(value) < 2**62:
                search.no_match = True
            else:
                terms["report_id"] = int(value)
        elif name in ("patient", "subject"):
            parsed = parse_patient_resource_id(value.removeprefix("Patient/"))
            if parsed is None:
                search.no_match = True
            else:
                terms["patient_id"] = parsed[0]
        elif name == "study":
            terms["study_uid"] = value.removeprefix("ImagingStudy/")[:64]
        elif name not in SEARCH_PARAMETERS:
            search.warnings.append(f"parameter {name[:64]} is not supported and was ignored")
    return terms, search
