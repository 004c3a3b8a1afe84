"""FHIR errors as OperationOutcome (R4 3.1.0.4): what went wrong, in the client's protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fhir.resources.R4B.operationoutcome import OperationOutcome
from starlette.exceptions import HTTPException

from pacs.archive.errors import Unavailable

log = logging.getLogger(__name__)
# IssueType (R4 valueset issue-type) of the HTTP refusals raised before a route runs.
_ISSUE_CODES = {401: "login", 403: "forbidden", 404: "not-found", 429: "throttled"}

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


def fhir_json_response(data: dict[str, Any], status: int = 200) -> JSONResponse:
    """A resource already in JSON form (see :func:`ehr.resources.imaging_study`)."""
    return JSONResponse(data, status_code=status, media_type=FHIR_JSON)


def error_response(error: FhirError) -> JSONResponse:
    return fhir_response(outcome([issue("error", error.code, error.diagnostics)]), error.status)


class FhirRoute(APIRoute):
    """A route whose refusals are OperationOutcomes too: authentication (401 with its
    challenge), authorization (403), throttling (429) and outages (503 with Retry-After)
    happen in dependencies or the archive, outside the route's own error handling."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                code = _ISSUE_CODES.get(exc.status_code, "processing")
                response = error_response(FhirError(exc.status_code, code, str(exc.detail)))
                for name, value in (exc.headers or {}).items():
                    response.headers[name] = value
                return response
            except Unavailable as exc:
                log.error("%s %s: %s", request.method, request.url.path, exc)
                error = FhirError(503, "transient", "the archive is unavailable; retry later")
                response = error_response(error)
                response.headers["Retry-After"] = str(exc.retry_after)
                return response

        return route
