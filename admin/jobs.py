"""``/api/jobs`` and ``/api/changes``: the job queue and the change feed for administrators.

Admins only (operation ``admin``). Retry and cancel are audited: they change
what the archive will do (send a study again, or not at all).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal
from pacs.jobs import JobNotFound, JobState, JobStateError

router = APIRouter()

# A job id is a 64-bit key: a larger number is a client's error (422), never an
# integer the database refuses with a 500 (the OpenAPI fuzz drew 2**63 once).
JobId = Annotated[int, Path(ge=1, le=2**63 - 1)]

Admin = Annotated[Principal, Depends(authorize("admin"))]
StateFilter = Annotated[
    str | None, Query(pattern="^(" + "|".join(s.value for s in JobState) + ")$")
]


class JobOut(BaseModel):
    """A job as the API answers it (times are ISO 8601, UTC)."""

    id: int
    kind: str
    payload: dict[str, Any]
    state: str = Field(description="queued, running, done, failed (dead letter) or cancelled")
    attempts: int
    max_attempts: int
    run_after: str
    lease_expires: str | None
    worker: str | None
    last_error: str
    dedup_key: str | None
    created_at: str
    updated_at: str


class JobList(BaseModel):
    total: int
    limit: int
    offset: int
    jobs: list[JobOut]


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


@router.get("/api/jobs", response_model=JobList)
def list_jobs(
    request: Request,
    principal: Admin,
    state: StateFilter = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # the index holds 64-bit integers
) -> dict[str, Any]:
    """A page of jobs, newest first, with the total that match the filters."""
    jobs, total = _archive(request).jobs.list(state=state, kind=kind, limit=limit, offset=offset)
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "jobs": [job.as_json() for job in jobs],
    }


@router.post("/api/jobs/{job_id}/retry", response_model=JobOut)
def retry_job(request: Request, principal: Admin, job_id: JobId) -> dict[str, Any]:
    """Queue the job again now with attempts reset; 404 unknown, 409 while it runs."""
    return _change(request, principal, job_id, "retry")


@router.post("/api/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(request: Request, principal: Admin, job_id: JobId) -> dict[str, Any]:
    """Cancel a queued or running job; 404 unknown, 409 when it already ended."""
    return _change(request, principal, job_id, "cancel")


def _change(request: Request, principal: Principal, job_id: int, action: str) -> dict[str, Any]:
    archive = _archive(request)
    try:
        job = archive.jobs.retry(job_id) if action == "retry" else archive.jobs.cancel(job_id)
    except JobNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except JobStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, f"job-{action}", detail=f"job {job.id} ({job.kind})")
    return job.as_json()


@router.get("/api/changes")
def changes(
    request: Request,
    principal: Admin,
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Changes after sequence number ``since``, oldest first; poll again with ``last``."""
    found = _archive(request).changes(since, limit)
    return {
        "changes": [change.as_json() for change in found],
        "last": found[-1].seq if found else since,
    }
