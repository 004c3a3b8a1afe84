"""``/api/aes``: the DICOM peers an administrator registers, changes, removes and tests.

Admins only (operation ``admin``); every change is audited. The peers live in
the database (pacs.config), so a change made here reaches every node within
seconds without a restart. Bad input answers 422 with the field and the rule
it broke; an unknown title 404; a title that exists already 409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from pacs.archive import Archive
from pacs.auth.http import authorize
from pacs.auth.principal import Principal
from pacs.config import DuplicateAE, InvalidConfig, RemoteAE, UnknownAE, remote_ae

router = APIRouter()

Admin = Annotated[Principal, Depends(authorize("admin"))]


class RemoteAEBody(BaseModel):
    """A peer as the API takes it; the rules themselves live in pacs.config.values."""

    ae_title: str = Field(max_length=64)
    host: str = Field(max_length=255)
    port: int
    services: list[str] = Field(
        default_factory=lambda: ["echo", "store", "find", "move", "get"], max_length=8
    )
    charset_fallback: str | None = Field(default=None, max_length=64)
    charset_profile: str = Field(default="utf8", max_length=16)
    tls_required: bool = False
    tls_identity: str | None = Field(default=None, max_length=255)
    description: str = Field(default="", max_length=255)
    enabled: bool = True


class RemoteAEOut(BaseModel):
    """A registered peer as the API answers it (the OpenAPI description's model)."""

    ae_title: str
    host: str
    port: int
    services: list[str]
    charset_fallback: str | None
    charset_profile: str
    tls_required: bool
    tls_identity: str | None
    description: str
    enabled: bool


class AEList(BaseModel):
    remote_aes: list[RemoteAEOut]
    allowed_calling_aes: list[str]
    strict: bool = Field(description="only registered or allowed calling AEs may associate")


class EchoOut(BaseModel):
    ae_title: str
    success: bool
    reason: str
    status: str | None = Field(description="the C-ECHO response status, 0x0000 for success")
    elapsed_ms: float


class CallingAEBody(BaseModel):
    ae_title: str = Field(max_length=64)
    description: str = Field(default="", max_length=255)


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _value(body: RemoteAEBody) -> RemoteAE:
    try:
        return remote_ae(**body.model_dump())
    except InvalidConfig as exc:
        raise HTTPException(422, str(exc)) from exc


def _not_found(exc: UnknownAE) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


@router.get("/api/aes", response_model=AEList)
def list_aes(request: Request, principal: Admin) -> dict[str, Any]:
    """Every registered peer, and the calling AE titles allowed without registration."""
    archive = _archive(request)
    return {
        "remote_aes": [peer.as_json() for peer in archive.remote_aes.all()],
        "allowed_calling_aes": archive.remote_aes.calling_aes(),
        "strict": archive.settings.dicom_strict,
    }


@router.get("/api/aes/{title}", response_model=RemoteAEOut)
def get_ae(request: Request, principal: Admin, title: str) -> dict[str, Any]:
    try:
        return _archive(request).remote_aes.get(title).as_json()
    except UnknownAE as exc:
        raise _not_found(exc) from exc


@router.post("/api/aes", status_code=status.HTTP_201_CREATED, response_model=RemoteAEOut)
def add_ae(request: Request, principal: Admin, body: RemoteAEBody) -> dict[str, Any]:
    """Register a peer; 409 when its title is taken."""
    archive = _archive(request)
    value = _value(body)
    try:
        archive.remote_aes.add(value)
    except DuplicateAE as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, "ae-add", detail=_describe(value))
    return value.as_json()


@router.put("/api/aes/{title}", response_model=RemoteAEOut)
def replace_ae(
    request: Request, principal: Admin, title: str, body: RemoteAEBody
) -> dict[str, Any]:
    """Change peer ``title`` (a different ``ae_title`` in the body renames it)."""
    archive = _archive(request)
    value = _value(body)
    try:
        archive.remote_aes.replace(title, value)
    except UnknownAE as exc:
        raise _not_found(exc) from exc
    except DuplicateAE as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, "ae-change", detail=f"{title}: {_describe(value)}")
    return value.as_json()


@router.delete("/api/aes/{title}", status_code=status.HTTP_204_NO_CONTENT)
def remove_ae(request: Request, principal: Admin, title: str) -> Response:
    archive = _archive(request)
    try:
        archive.remote_aes.remove(title)
    except UnknownAE as exc:
        raise _not_found(exc) from exc
    archive.audit.record(principal, "ae-remove", detail=title)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/aes/{title}/echo", response_model=EchoOut)
def echo_ae(request: Request, principal: Admin, title: str) -> dict[str, Any]:
    """A real C-ECHO to the peer: ``success`` and, either way, the ``reason``."""
    archive = _archive(request)
    try:
        result = archive.remote_aes.echo(title)
    except UnknownAE as exc:
        raise _not_found(exc) from exc
    outcome = "success" if result.ok else f"failure: {result.reason}"
    archive.audit.record(principal, "ae-echo", outcome, detail=title)
    return {"ae_title": title, **result.as_json()}


@router.post("/api/calling-aes", status_code=status.HTTP_201_CREATED)
def allow_calling_ae(request: Request, principal: Admin, body: CallingAEBody) -> dict[str, str]:
    """Let a calling AE title associate (and store) without registering it as a peer."""
    archive = _archive(request)
    try:
        archive.remote_aes.allow_calling(body.ae_title, body.description)
    except InvalidConfig as exc:
        raise HTTPException(422, str(exc)) from exc
    except DuplicateAE as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    archive.audit.record(principal, "calling-ae-add", detail=body.ae_title.strip())
    return {"ae_title": body.ae_title.strip()}


@router.delete("/api/calling-aes/{title}", status_code=status.HTTP_204_NO_CONTENT)
def disallow_calling_ae(request: Request, principal: Admin, title: str) -> Response:
    archive = _archive(request)
    try:
        archive.remote_aes.disallow_calling(title)
    except UnknownAE as exc:
        raise _not_found(exc) from exc
    archive.audit.record(principal, "calling-ae-remove", detail=title)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _describe(value: RemoteAE) -> str:
    state = "" if value.enabled else ", disabled"
    tls = ", TLS" if value.tls_required else ""
    return f"{value.ae_title} at {value.host}:{value.port} [{','.join(value.services)}]{tls}{state}"
