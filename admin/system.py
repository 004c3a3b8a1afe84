"""``/api/storage`` and ``/api/settings``: how full the archive is and how it is configured.

Admins only (operation ``admin``). Neither returns patient data: storage
figures are counts and bytes per modality and month; settings are the
effective bootstrap values exactly as ``pacs config`` prints them, secrets
and database passwords masked. Settings are read-only here: they are read at
start; what an administrator changes while the archive runs (remote AEs...)
has its own API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.archive.usage import Space
from pacs.auth.http import authorize
from pacs.auth.principal import Principal

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]


class SpaceOut(BaseModel):
    total_bytes: int
    free_bytes: int


class StoreOut(BaseModel):
    kind: str = Field(description="filesystem or s3")
    location: str = Field(description="folder, or endpoint/bucket/prefix (no credentials)")
    instances: int
    bytes: int
    space: SpaceOut | None = Field(description="free space; unknown for an object store")


class MonthOut(BaseModel):
    modality: str
    month: str = Field(description="YYYY-MM of reception, UTC")
    instances: int
    bytes: int


class CheckOut(BaseModel):
    """The newest ``pacs check`` run, as recorded in the audit trail."""

    at: datetime
    by: str
    consistent: bool
    outcome: str
    summary: dict[str, Any]


class StorageOut(BaseModel):
    stores: list[StoreOut]
    by_modality_month: list[MonthOut]
    data_dir: str
    data_dir_space: SpaceOut | None = Field(description="the index, spool and audit spill")
    last_check: CheckOut | None = Field(description="none until `pacs check` has run")


def _space(space: Space | None) -> SpaceOut | None:
    return SpaceOut(total_bytes=space.total_bytes, free_bytes=space.free_bytes) if space else None


@router.get("/api/storage")
def storage_usage(request: Request, principal: Admin) -> StorageOut:
    """Usage per store and per modality and month, free space, the last integrity check."""
    archive: Archive = request.app.state.archive
    found = archive.storage_usage()
    check = found.last_check
    return StorageOut(
        stores=[
            StoreOut(
                kind=store.kind,
                location=store.location,
                instances=store.instances,
                bytes=store.bytes,
                space=_space(store.space),
            )
            for store in found.stores
        ],
        by_modality_month=[
            MonthOut(modality=m.modality, month=m.month, instances=m.instances, bytes=m.bytes)
            for m in found.by_modality_month
        ],
        data_dir=found.data_dir,
        data_dir_space=_space(found.data_dir_space),
        last_check=CheckOut(
            at=check.at,
            by=check.by,
            consistent=check.consistent,
            outcome=check.outcome,
            summary=check.summary,
        )
        if check
        else None,
    )


class CheckRequest(BaseModel):
    quick: bool = Field(default=True, description="compare sizes only; false hashes every blob")


class CheckQueued(BaseModel):
    job_id: int | None = Field(description="follow it in /api/jobs; the result lands in last_check")


@router.post("/api/storage/check", status_code=status.HTTP_202_ACCEPTED)
def request_check(request: Request, principal: Admin, body: CheckRequest) -> CheckQueued:
    """Run ``pacs check`` (read-only: reports, never repairs) as a job; audited."""
    archive: Archive = request.app.state.archive
    return CheckQueued(job_id=archive.request_integrity_check(principal, quick=body.quick))


class SettingsOut(BaseModel):
    """Every setting's effective value (``pacs config``), secrets shown as ********."""

    settings: dict[str, Any]


@router.get("/api/settings")
def effective_settings(request: Request, principal: Admin) -> SettingsOut:
    archive: Archive = request.app.state.archive
    archive.audit.record(principal, "settings-read")
    return SettingsOut(settings=archive.settings.effective())
