"""``GET /api/orders``: imaging orders from the HIS, and studies that arrived with none.

Filters: ``date`` (scheduled, ``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``), ``modality``,
``status``, ``patient`` (patient ID, a merged patient's old ID, citizen ID or part
of the name, accents ignored). ``unmatched=true`` lists instead the stored
studies matched to no order (the reconciliation list). Orders carry patient
data: any role that may search studies may list them, except a share link.
``GET /api/studies/{study}/order``: the order a study was matched to.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from pacs.archive import Archive
from pacs.archive.errors import InvalidRequest
from pacs.auth.http import authorize
from pacs.auth.principal import Principal, Role

router = APIRouter()

Searcher = Annotated[Principal, Depends(authorize("search"))]


@router.get("/api/orders")
def list_orders(
    request: Request,
    principal: Searcher,
    date: Annotated[str | None, Query(max_length=17)] = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
    patient: Annotated[str | None, Query(max_length=64)] = None,
    unmatched: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Orders, newest first; or, with ``unmatched=true``, the studies without an order."""
    if principal.role is Role.SHARE:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a share link opens one study only")
    archive: Archive = request.app.state.archive
    if unmatched:
        studies = archive.workflow.unmatched_studies(limit, offset)
        archive.audit.record(principal, "orders-unmatched", detail=f"{len(studies)} studies")
        return {"studies": studies}
    try:
        orders = archive.workflow.orders(
            scheduled=date,
            modality=modality,
            status=status_,
            patient=patient,
            limit=limit,
            offset=offset,
        )
    except InvalidRequest as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    archive.audit.record(
        principal,
        "orders-list",
        patient_id=patient or "",
        detail=f"{len(orders)} orders",
    )
    return {"orders": [order.as_json() for order in orders]}


@router.get("/api/studies/{study}/order")
def study_order(request: Request, principal: Searcher, study: str) -> dict[str, Any]:
    """The order a stored study was matched to (``order`` null: none, or not yet stable)."""
    if principal.role is Role.SHARE and principal.study_uid != study:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a share link opens one study only")
    archive: Archive = request.app.state.archive
    order = archive.workflow.order_of_study(study)
    archive.audit.record(
        principal,
        "study-order",
        patient_id=order.patient["patient_id"] if order else None,
        study_uid=study,
    )
    return {"study_uid": study, "order": order.as_json() if order else None}
