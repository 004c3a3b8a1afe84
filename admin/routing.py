"""Routing and sending over HTTP: rules, DICOMweb endpoints, sends, remote query and retrieve.

* ``/api/routes`` (operation ``admin``): routing rules, CRUD; ``/api/routes/endpoints``:
  DICOMweb destinations, their secret stored and shown masked; ``/api/routes/sends``:
  the outbox (progress, failures, retry, cancel). Every change is audited.
* ``POST /api/studies/{uid}/send`` (operation ``send``): a study to a remote AE or a
  DICOMweb endpoint, as a job with progress.
* ``POST /api/remote/{ae}/find`` and ``/retrieve`` (operation ``send``): C-FIND at
  another PACS, and a C-MOVE from it to this archive as a job.

Bad input answers 422 with the field and the rule; an unknown name 404; a taken
name 409; a remote PACS that cannot be reached now 424 (Failed Dependency), so that
no answer of this API is a 5xx.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal
from pacs.config import UnknownAE
from pacs.routing.outbox import STATES
from pacs.routing.remote import BadQuery
from pacs.routing.service import DestinationNotFound, StudyNotFound
from pacs.routing.store_scu import DestinationUnavailable
from pacs.routing.values import (
    MASK,
    DuplicateRoute,
    Endpoint,
    InvalidRoute,
    Rule,
    UnknownRoute,
    endpoint,
    rule,
)

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]
Sender = Annotated[Principal, Depends(authorize("send"))]
Facility = Annotated[Principal, Depends(authorize("store"))]  # another archive's credential
Id = Annotated[int, Path(ge=1, le=2**62)]
Name = Annotated[str, Path(max_length=64)]
UIDPath = Annotated[str, Path(max_length=64, pattern=r"^[0-9.]+$")]


class RuleBody(BaseModel):
    name: str = Field(max_length=64)
    destination: str = Field(max_length=80, description="ae:<remote AE title> or web:<endpoint>")
    trigger: str = Field(default="stable", max_length=16, description="stable or instance")
    calling_ae: str = Field(default="", max_length=64, description="wildcards * and ?")
    modality: str = Field(default="", max_length=64)
    body_part: str = Field(default="", max_length=64)
    description: str = Field(default="", max_length=256)
    window_start: str = Field(default="", max_length=5, description="HH:MM, local time")
    window_end: str = Field(default="", max_length=5)
    priority: int = Field(default=0, ge=-1000, le=1000)
    enabled: bool = True


class EndpointBody(BaseModel):
    name: str = Field(max_length=64)
    url: str = Field(max_length=512, description="DICOMweb base URL (STOW-RS: {url}/studies)")
    auth: str = Field(default="none", max_length=16, description="none, bearer or basic")
    username: str = Field(default="", max_length=128)
    secret: str = Field(default="", max_length=4096, description=f"{MASK!r} keeps the stored one")
    description: str = Field(default="", max_length=255)
    enabled: bool = True


class SendBody(BaseModel):
    destination: str = Field(max_length=80, description="ae:<remote AE title> or web:<endpoint>")
    priority: int = Field(default=0, ge=-1000, le=1000)


class FindBody(BaseModel):
    level: str = Field(default="STUDY", max_length=8)
    keys: dict[str, str] = Field(default_factory=dict, max_length=16)
    limit: int = Field(default=200, ge=1, le=1000)


class RetrieveBody(BaseModel):
    study_uid: str = Field(max_length=64, pattern=r"^[0-9.]+$")
    series_uid: str = Field(default="", max_length=64, pattern=r"^[0-9.]*$")


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _checked(archive: Archive, build: Any, **fields: Any) -> Any:
    try:
        value = build(**fields)
        if isinstance(value, Rule):
            archive.routing.check_destination(value.destination)
        return value
    except InvalidRoute as exc:
        raise HTTPException(422, str(exc)) from exc
    except DestinationNotFound as exc:
        raise HTTPException(422, f"destination: {exc}") from exc


def _not_found(exc: LookupError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0] if exc.args else exc))


# -- DICOMweb endpoints (declared before /api/routes/{id}) ---------------------------------------


@router.get("/api/routes/endpoints")
def list_endpoints(request: Request, principal: Admin) -> dict[str, Any]:
    """Every DICOMweb destination, secrets masked."""
    return {"endpoints": [e.as_json() for e in _archive(request).routing.rules.endpoints()]}


@router.post("/api/routes/endpoints", status_code=status.HTTP_201_CREATED)
def add_endpoint(request: Request, principal: Admin, body: EndpointBody) -> dict[str, Any]:
    archive = _archive(request)
    value: Endpoint = _checked(archive, endpoint, **body.model_dump())
    try:
        created = archive.routing.rules.add_endpoint(value)
    except DuplicateRoute as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, "route-endpoint-add", detail=f"{value.name} {value.url}")
    return created.as_json()


@router.get("/api/routes/endpoints/{name}")
def get_endpoint(request: Request, principal: Admin, name: Name) -> dict[str, Any]:
    try:
        return _archive(request).routing.rules.endpoint(name).as_json()
    except UnknownRoute as exc:
        raise _not_found(exc) from exc


@router.put("/api/routes/endpoints/{name}")
def replace_endpoint(
    request: Request, principal: Admin, name: Name, body: EndpointBody
) -> dict[str, Any]:
    """Change an endpoint; a ``secret`` of ``********`` keeps the stored one."""
    archive = _archive(request)
    keep = body.secret == MASK
    fields = body.model_dump()
    if keep:
        try:
            fields["secret"] = archive.routing.rules.endpoint(name).secret
        except UnknownRoute as exc:
            raise _not_found(exc) from exc
    value: Endpoint = _checked(archive, endpoint, **fields)
    try:
        changed = archive.routing.rules.replace_endpoint(name, value, keep_secret=keep)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    except DuplicateRoute as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, "route-endpoint-change", detail=f"{name}: {value.url}")
    return changed.as_json()


@router.delete("/api/routes/endpoints/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove_endpoint(request: Request, principal: Admin, name: Name) -> Response:
    archive = _archive(request)
    try:
        archive.routing.rules.remove_endpoint(name)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    archive.audit.record(principal, "route-endpoint-remove", detail=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- the outbox ----------------------------------------------------------------------------------


@router.get("/api/routes/sends")
def list_sends(
    request: Request,
    principal: Admin,
    state: Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")] = None,
    destination: Annotated[str | None, Query(max_length=80)] = None,
    study: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    """Sends newest first: state, progress, last error."""
    sends, total = _archive(request).routing.outbox.list(
        state=state, destination=destination, study_uid=study, limit=limit, offset=offset
    )
    return {"total": total, "sends": [s.as_json() for s in sends]}


@router.get("/api/routes/destinations")
def list_destinations(request: Request, principal: Sender) -> dict[str, Any]:
    """Where a person may send a study (enabled remote AEs that take C-STORE, enabled
    DICOMweb endpoints) and which remote AEs answer C-FIND: names and descriptions only,
    for the send and query pages of those who may send but not administer (no host, port
    or credential)."""
    archive = _archive(request)
    peers = [peer for peer in archive.remote_aes.all() if peer.enabled]
    destinations = [
        {"destination": f"ae:{p.ae_title}", "name": p.ae_title, "description": p.description}
        for p in peers
        if "store" in p.services
    ] + [
        {"destination": f"web:{e.name}", "name": e.name, "description": e.description}
        for e in archive.routing.rules.endpoints()
        if e.enabled
    ]
    remotes = [
        {"name": p.ae_title, "description": p.description} for p in peers if "find" in p.services
    ]
    return {"destinations": destinations, "remotes": remotes}


@router.get("/api/routes/sends/{send_id}")
def get_send(request: Request, principal: Sender, send_id: Id) -> dict[str, Any]:
    """One send and its progress (what ``POST /api/studies/{uid}/send`` queued)."""
    try:
        return _archive(request).routing.outbox.get(send_id).as_json()
    except UnknownRoute as exc:
        raise _not_found(exc) from exc


@router.post("/api/routes/sends/{send_id}/retry")
def retry_send(request: Request, principal: Admin, send_id: Id) -> dict[str, Any]:
    archive = _archive(request)
    try:
        queued = archive.routing.retry_send(send_id)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(
        principal, "route-send-retry", study_uid=queued.send.study_uid, detail=str(send_id)
    )
    return queued.as_json()


@router.post("/api/routes/sends/{send_id}/cancel")
def cancel_send(request: Request, principal: Admin, send_id: Id) -> dict[str, Any]:
    archive = _archive(request)
    try:
        view = archive.routing.outbox.cancel(send_id)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(
        principal, "route-send-cancel", study_uid=view.study_uid, detail=str(send_id)
    )
    return view.as_json()


# -- rules ---------------------------------------------------------------------------------------


@router.get("/api/routes")
def list_rules(request: Request, principal: Admin) -> dict[str, Any]:
    return {"rules": [r.as_json() for r in _archive(request).routing.rules.rules()]}


@router.post("/api/routes", status_code=status.HTTP_201_CREATED)
def add_rule(request: Request, principal: Admin, body: RuleBody) -> dict[str, Any]:
    archive = _archive(request)
    value: Rule = _checked(archive, rule, **body.model_dump())
    try:
        created = archive.routing.rules.add_rule(value)
    except DuplicateRoute as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, "route-add", detail=_describe(created))
    return created.as_json()


@router.get("/api/routes/{rule_id}")
def get_rule(request: Request, principal: Admin, rule_id: Id) -> dict[str, Any]:
    try:
        return _archive(request).routing.rules.rule(rule_id).as_json()
    except UnknownRoute as exc:
        raise _not_found(exc) from exc


@router.put("/api/routes/{rule_id}")
def replace_rule(request: Request, principal: Admin, rule_id: Id, body: RuleBody) -> dict[str, Any]:
    archive = _archive(request)
    value: Rule = _checked(archive, rule, **body.model_dump())
    try:
        changed = archive.routing.rules.replace_rule(rule_id, value)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    except DuplicateRoute as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, "route-change", detail=f"{rule_id}: {_describe(changed)}")
    return changed.as_json()


@router.delete("/api/routes/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_rule(request: Request, principal: Admin, rule_id: Id) -> Response:
    archive = _archive(request)
    try:
        archive.routing.rules.remove_rule(rule_id)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    archive.audit.record(principal, "route-remove", detail=str(rule_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- send a study, query and retrieve elsewhere ---------------------------------------------------


@router.post("/api/studies/{study_uid}/send", status_code=status.HTTP_202_ACCEPTED)
def send_study(
    request: Request, principal: Sender, study_uid: UIDPath, body: SendBody
) -> dict[str, Any]:
    """Queue the study for a remote AE or DICOMweb endpoint; poll the send for progress."""
    archive = _archive(request)
    try:
        queued = archive.routing.send_study(
            study_uid, body.destination, priority=body.priority, origin=f"user:{principal.name}"
        )
    except InvalidRoute as exc:
        raise HTTPException(422, str(exc)) from exc
    except DestinationNotFound as exc:
        raise HTTPException(422, f"destination: {exc}") from exc
    except StudyNotFound as exc:
        raise _not_found(exc) from exc
    instances = archive.locate(study_uid)
    archive.audit.record(
        principal,
        "study-send",
        patient_id=instances[0].patient_id if instances else None,
        study_uid=study_uid,
        detail=f"to {body.destination} (send {queued.send.id})",
    )
    return queued.as_json()


@router.post("/api/remote/{ae}/find")
def remote_find(request: Request, principal: Sender, ae: Name, body: FindBody) -> dict[str, Any]:
    """C-FIND at a registered remote AE: its matches as DICOM JSON."""
    archive = _archive(request)
    try:
        matches, truncated = archive.routing.find(ae, body.level, body.keys, body.limit)
    except UnknownAE as exc:
        raise _not_found(exc) from exc
    except BadQuery as exc:
        raise HTTPException(422, str(exc)) from exc
    except DestinationUnavailable as exc:
        raise HTTPException(status.HTTP_424_FAILED_DEPENDENCY, str(exc)) from exc
    archive.audit.record(
        principal, "remote-find", detail=f"{ae}: {body.level} {sorted(body.keys)}"[:255]
    )
    return {"matches": matches, "truncated": truncated}


@router.post("/api/remote/{ae}/retrieve", status_code=status.HTTP_202_ACCEPTED)
def remote_retrieve(
    request: Request, principal: Sender, ae: Name, body: RetrieveBody
) -> dict[str, Any]:
    """Queue a C-MOVE of a study (or series) from a remote AE to this archive."""
    archive = _archive(request)
    try:
        retrieval, job_id = archive.routing.retrieve(
            ae, body.study_uid, body.series_uid, requested_by=principal.name
        )
    except UnknownAE as exc:
        raise _not_found(exc) from exc
    except (BadQuery, DestinationNotFound) as exc:
        raise HTTPException(422, str(exc)) from exc
    archive.audit.record(
        principal, "remote-retrieve", study_uid=body.study_uid, detail=f"from {ae}"
    )
    return {"retrieval": retrieval, "job": job_id}


@router.get("/api/remote/retrievals/{retrieve_id}")
def get_retrieval(request: Request, principal: Sender, retrieve_id: Id) -> dict[str, Any]:
    try:
        return _archive(request).routing.retrieval(retrieve_id)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc


def _describe(value: Rule) -> str:
    match = ", ".join(
        f"{field}={getattr(value, field)}"
        for field in ("trigger", "calling_ae", "modality", "body_part", "description")
        if getattr(value, field)
    )
    return f"{value.name} -> {value.destination} (priority {value.priority}; {match})"[:255]


# -- studies from other facilities ----------------------------------------------------------------


class ExternalBody(BaseModel):
    source: str = Field(default="media", max_length=160, description="where it came from")


@router.get("/api/external-studies")
def external_studies(
    request: Request,
    principal: Sender,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    citizen_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Studies received from other facilities, newest first, with their patient ID mapping;
    ``citizen_id`` finds one person's."""
    archive = _archive(request)
    found = archive.routing.external.recent(limit, offset, citizen_id)
    archive.audit.record(
        principal,
        "external-studies",
        detail=f"{len(found)} listed",
        patients={v.mapped_patient_id or v.original_patient_id for v in found},
    )
    return {"studies": [v.as_json() for v in found]}


@router.post("/api/studies/{study_uid}/external")
def mark_external(
    request: Request, principal: Admin, study_uid: UIDPath, body: ExternalBody
) -> dict[str, Any]:
    """Mark a stored study as received from elsewhere (a CD, say) and map its patient ID
    to the local one by citizen ID where it carries one."""
    archive = _archive(request)
    try:
        view = archive.routing.external.mark(study_uid, body.source.strip() or "media", principal)
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    archive.audit.record(
        principal,
        "external-mark",
        patient_id=view.mapped_patient_id or view.original_patient_id,
        study_uid=study_uid,
        detail=f"from {view.source}"[:255],
    )
    return view.as_json()


class PackageBody(BaseModel):
    facility: str = Field(max_length=64, description="a DICOMweb endpoint's name")


class IncomingPackage(BaseModel):
    study_uid: str = Field(max_length=64, pattern=r"^[0-9.]+$")
    facility: str = Field(max_length=128)


@router.post("/api/studies/{study_uid}/package", status_code=status.HTTP_202_ACCEPTED)
def push_package(
    request: Request, principal: Sender, study_uid: UIDPath, body: PackageBody
) -> dict[str, Any]:
    """Push the study (images, signed report SR and PDF) to another facility's archive,
    which keeps it as external, from us."""
    archive = _archive(request)
    try:
        queued = archive.routing.packages.push(study_uid, body.facility, principal.name)
    except DestinationNotFound as exc:
        raise HTTPException(422, f"facility: {exc}") from exc
    except (UnknownRoute, StudyNotFound) as exc:
        raise _not_found(exc) from exc
    instances = archive.locate(study_uid)
    archive.audit.record(
        principal,
        "package-push",
        patient_id=instances[0].patient_id if instances else None,
        study_uid=study_uid,
        detail=f"to {body.facility}",
    )
    return queued


@router.post("/api/external-studies/incoming")
def incoming_package(
    request: Request, principal: Facility, body: IncomingPackage
) -> dict[str, Any]:
    """Another facility's notice that it pushed us a study: keep it as external, from it."""
    archive = _archive(request)
    try:
        view = archive.routing.external.mark(
            body.study_uid, f"facility:{body.facility}", archive.routing.itself
        )
    except UnknownRoute as exc:
        raise _not_found(exc) from exc
    archive.audit.record(
        principal,
        "package-received",
        patient_id=view.mapped_patient_id or view.original_patient_id,
        study_uid=body.study_uid,
        detail=f"from {body.facility}"[:255],
    )
    return view.as_json()
