"""The one mapping from archive errors to HTTP statuses, for every route of the app.

Routes raise (or let through) the archive's typed errors and never catch a
database or store exception themselves: an index or storage outage answers
503 with Retry-After on every route, a missing object 404, a conflict 409, a
malformed request 400. Like Microsoft's DICOM server, one table decides, so
two doors cannot disagree about the same failure. The body names the
condition, never the SQL or the driver's message (those go to the log).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pacs.archive.errors import (
    RETRY_AFTER_S,
    ArchiveError,
    BlobNotFound,
    Conflict,
    IndexUnavailable,
    InvalidRequest,
    NotFound,
    StorageError,
    StorageUnavailable,
    Unavailable,
)
from pacs.metrics import instruments

log = logging.getLogger(__name__)


def unavailable_response(content: dict[str, Any], retry_after: int = RETRY_AFTER_S) -> JSONResponse:
    """503 with the Retry-After a client (or a load balancer) waits before trying again."""
    return JSONResponse(
        content,
        status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(retry_after)},
    )


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unavailable)
    log.error("%s %s: %s", request.method, request.url.path, exc)
    instruments().outage("index" if isinstance(exc, IndexUnavailable) else "storage")
    if isinstance(exc, IndexUnavailable):
        detail = "the index is unavailable; retry later"
    elif isinstance(exc, StorageUnavailable):
        detail = "storage is unavailable; retry later"
    else:
        detail = "the archive is unavailable; retry later"
    return unavailable_response({"detail": detail}, exc.retry_after)


def _store_error(request: Request, exc: Exception) -> JSONResponse:
    """A blob store error no facade call translated (a blob opened for parsing or rendering)."""
    if isinstance(exc, BlobNotFound):
        log.error(
            "%s %s: the index names a missing blob: %s", request.method, request.url.path, exc
        )
        return JSONResponse(
            {"detail": "a stored object is missing; run `pacs check`"},
            status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return _unavailable(request, StorageUnavailable(str(exc)))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as text: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, but renderable whatever the client sent (a NaN echoed back was a 500)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": _finite(jsonable_encoder(exc.errors()))},
        status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _with_status(code: int) -> Callable[[Request, Exception], JSONResponse]:
    def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, code)

    return handler


# Starlette picks the handler of the nearest class in the exception's MRO.
STATUS_OF: dict[type[ArchiveError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    InvalidRequest: status.HTTP_400_BAD_REQUEST,
}


def install_error_mapping(app: FastAPI) -> None:
    """Register the handlers on ``app`` (routes, dependencies and middleware-free paths)."""
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StorageError, _store_error)
    for kind, code in STATUS_OF.items():
        app.add_exception_handler(kind, _with_status(code))
