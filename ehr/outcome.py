"""FHIR errors as OperationOutcome (R4 3.1.0.4): what went wrong, in the client's protocol."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from fhir.resources.R4B.operationoutcome import OperationOutcome

FHIR_JSON = "application/fhir+json; charset=utf-8"


class FhirError(Exception):
    """A request this door refuses: the HTTP status, the issue code (IssueType) and why."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics


def issue(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    return {"severity": severity, "code": code, "diagnostics": diagnostics[:1000]}


def outcome(issues: list[dict[str, Any]]) -> OperationOutcome:
    return OperationOutcome.model_validate({"issue": issues})


def fhir_response(resource: Any, status: int = 200) -> JSONResponse:
    """A resource (a fhir.resources model, validated when built) as ``application/fhir+json``."""
    return JSONResponse(
        resource.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=FHIR_JSON,
    )


def error_response(error: FhirError) -> JSONResponse:
    return fhir_response(outcome([issue("error", error.code, error.diagnostics)]), error.status)
