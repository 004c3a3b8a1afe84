"""DELETE of a study, series or instance over DICOMweb (soft delete, see pacs.archive.lifecycle).

``DELETE /dicom-web/studies/{study}[/series/{series}[/instances/{instance}]]``
for the roles allowed the ``delete`` operation (administrators). The reason is
required, because every delete of patient data must say why: give it as the
``reason`` query parameter or the ``X-Deletion-Reason`` header (UTF-8, at most
1024 characters). Answers:

* 204: deleted; from now on no door finds it, its bytes are purged after
  ``delete_purge_after_hours``;
* 400: no reason given;
* 403: the role may not delete;
* 404: no such study, series or instance (or already deleted);
* 409: the study is under a legal hold (``/api/studies/{study}/hold``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status

from pacs.archive import Archive
from pacs.archive.errors import LegalHoldActive, NotFound
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

DeletePrincipal = Annotated[Principal, Depends(authorize("delete"))]
ReasonQuery = Annotated[str | None, Query(max_length=1024)]
ReasonHeader = Annotated[str | None, Header(alias="X-Deletion-Reason", max_length=1024)]


def _delete(
    request: Request,
    principal: Principal,
    reason: str | None,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    if not reason or not reason.strip():
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "a reason is required: the 'reason' query parameter or the X-Deletion-Reason header",
        )
    archive: Archive = request.app.state.archive
    try:
        archive.delete(principal, study, series, instance, reason=reason)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except LegalHoldActive as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/studies/{study}", status_code=status.HTTP_204_NO_CONTENT)
def delete_study(
    request: Request,
    principal: DeletePrincipal,
    study: str,
    reason: ReasonQuery = None,
    x_reason: ReasonHeader = None,
) -> Response:
    """Delete a whole study (every series and instance)."""
    return _delete(request, principal, reason or x_reason, study)


@router.delete("/studies/{study}/series/{series}", status_code=status.HTTP_204_NO_CONTENT)
def delete_series(
    request: Request,
    principal: DeletePrincipal,
    study: str,
    series: str,
    reason: ReasonQuery = None,
    x_reason: ReasonHeader = None,
) -> Response:
    """Delete one series of a study."""
    return _delete(request, principal, reason or x_reason, study, series)


@router.delete(
    "/studies/{study}/series/{series}/instances/{instance}",
    status_code=status.HTTP_204_NO_CONTENT,
)
def delete_instance(
    request: Request,
    principal: DeletePrincipal,
    study: str,
    series: str,
    instance: str,
    reason: ReasonQuery = None,
    x_reason: ReasonHeader = None,
) -> Response:
    """Delete one instance."""
    return _delete(request, principal, reason or x_reason, study, series, instance)
