"""WADO-RS ``rendered`` and ``thumbnail`` resources (PS3.18 8.3.5.1, 10.4.1.1.3-4).

Consumer-format pictures for study lists, EHR previews and phones: one frame
through the display pipeline of :mod:`pacs.rendering`, as JPEG, PNG or GIF,
with ``window``, ``viewport``, ``quality`` and ``accept``. Thumbnails are
cached on local disk under a hash of what they show (never a path built from
request text).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from dicomweb.accept import matches, parse_accept
from pacs.archive import Archive
from pacs.archive.retrieve import StoredInstance
from pacs.auth.http import authorize
from pacs.auth.policy import check_study_scope
from pacs.auth.principal import Principal
from pacs.rendering import MEDIA_TYPES, RenderError, RenderOptions, render_frame

router = APIRouter()
RetrievePrincipal = Annotated[Principal, Depends(authorize("retrieve"))]
THUMBNAIL_VIEWPORT = (128, 128)


class RenderQuery:
    """The query parameters every rendered resource takes, parsed and checked."""

    def __init__(
        self,
        media_type: str,
        window: tuple[float, float] | None,
        viewport: tuple[int, int] | None,
        quality: int,
    ) -> None:
        self.media_type = media_type
        self.window = window
        self.viewport = viewport
        self.quality = quality

    def options(self, default_viewport: tuple[int, int] | None = None) -> RenderOptions:
        return RenderOptions(
            self.media_type, self.quality, self.window, self.viewport or default_viewport
        )


async def render_query(
    request: Request,
    window: Annotated[str | None, Query(description="center,width[,function]")] = None,
    viewport: Annotated[str | None, Query(description="vw,vh[,sx,sy,sw,sh]")] = None,
    quality: Annotated[int, Query(ge=1, le=100)] = 90,
    accept: Annotated[str | None, Query(description="media type, overrides Accept")] = None,
) -> RenderQuery:
    """Parsed on the event loop: it is pure parsing, and a sync dependency costs a
    worker-thread round trip per request."""
    return RenderQuery(
        pick_image_type(accept or request.headers.get("accept", "")),
        _window(window),
        _viewport(viewport),
        quality,
    )


def pick_image_type(accept: str) -> str:
    """The first acceptable consumer image type (q-values honoured); JPEG by default."""
    for media in parse_accept(accept):
        if media.media_type in MEDIA_TYPES:
            return media.media_type
        if matches(media.media_type, "image/jpeg"):  # */*, image/*
            return "image/jpeg"
    raise HTTPException(
        status.HTTP_406_NOT_ACCEPTABLE,
        f"rendered images come as {', '.join(MEDIA_TYPES)}; Accept was {accept!r}",
    )


def _window(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    parts = value.split(",")
    try:
        center, width = float(parts[0]), float(parts[1])
    except (IndexError, ValueError) as exc:
        raise HTTPException(400, "window must be center,width[,function]") from exc
    if len(parts) > 2 and parts[2].strip().lower() not in ("", "linear"):
        raise HTTPException(400, f"window function {parts[2]!r} is not supported (linear only)")
    if width < 1:
        raise HTTPException(400, "window width must be at least 1")
    return center, width


def _viewport(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.split(",")
    try:
        width, height = int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise HTTPException(400, "viewport must be vw,vh[,sx,sy,sw,sh]") from exc
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise HTTPException(400, "viewport sides must be 1-8192")
    return width, height


def _archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def _render(
    archive: Archive, instance: StoredInstance, frame: int, options: RenderOptions
) -> bytes:
    with archive.open_seekable(instance.blob_key) as source:
        try:
            return render_frame(source, frame, options)
        except RenderError as exc:
            code = 404 if "out of range" in str(exc) else 422
            raise HTTPException(code, str(exc)) from exc


def _instances(
    archive: Archive,
    principal: Principal,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> list[StoredInstance]:
    check_study_scope(principal, study)
    found = archive.locate(study, series, instance)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such study, series or instance")
    return found


def _audit(archive: Archive, principal: Principal, found: list[StoredInstance], what: str) -> None:
    archive.audit.record(
        principal, "wado", patient_id=found[0].patient_id, study_uid=found[0].study_uid, detail=what
    )


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered")
def rendered_instance(
    study: str,
    series: str,
    instance: str,
    request: Request,
    principal: RetrievePrincipal,
    query: Annotated[RenderQuery, Depends(render_query)],
) -> Response:
    archive = _archive(request)
    found = _instances(archive, principal, study, series, instance)
    body = _render(archive, found[0], 0, query.options())
    _audit(archive, principal, found, "rendered instance")
    return Response(body, media_type=query.media_type)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered")
def rendered_frame(
    study: str,
    series: str,
    instance: str,
    frames: str,
    request: Request,
    principal: RetrievePrincipal,
    query: Annotated[RenderQuery, Depends(render_query)],
) -> Response:
    try:
        frame = int(frames.split(",")[0])
    except ValueError as exc:
        raise HTTPException(400, "frame numbers are positive integers") from exc
    if frame < 1:
        raise HTTPException(400, "frame numbers start at 1")
    archive = _archive(request)
    found = _instances(archive, principal, study, series, instance)
    body = _render(archive, found[0], frame - 1, query.options())
    _audit(archive, principal, found, f"rendered frame {frame}")
    return Response(body, media_type=query.media_type)


@router.get("/studies/{study}/series/{series}/rendered")
def rendered_series(
    study: str,
    series: str,
    request: Request,
    principal: RetrievePrincipal,
    query: Annotated[RenderQuery, Depends(render_query)],
) -> StreamingResponse:
    """Every instance's first frame as one multipart/related response, rendered one at a time."""
    archive = _archive(request)
    found = _instances(archive, principal, study, series)
    options = query.options()
    boundary = hashlib.sha256(f"{study}{series}".encode()).hexdigest()[:32]
    _audit(archive, principal, found, f"rendered series {series}")

    def parts() -> Iterator[bytes]:
        for instance in found:
            body = _render(archive, instance, 0, options)
            yield f"--{boundary}\r\nContent-Type: {options.media_type}\r\n\r\n".encode()
            yield body + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    media = f'multipart/related; type="{options.media_type}"; boundary={boundary}'
    return StreamingResponse(parts(), media_type=media)


def _representative(found: list[StoredInstance]) -> StoredInstance:
    """The middle image of the first series: what a radiologist would pick for a preview."""
    first_series = [i for i in found if i.series_uid == found[0].series_uid]
    return first_series[len(first_series) // 2]


def _thumbnail(
    request: Request, principal: Principal, query: RenderQuery, found: list[StoredInstance]
) -> Response:
    archive = _archive(request)
    instance = _representative(found)
    options = query.options(THUMBNAIL_VIEWPORT)
    identity = f"{instance.sha256}|{options}".encode()
    cache = Path(archive.settings.data_dir) / "cache" / "thumbnails"
    path = cache / (hashlib.sha256(identity).hexdigest() + ".img")
    if path.is_file():
        body = path.read_bytes()
    else:
        body = _render(archive, instance, 0, options)
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp:
            tmp.write(body)
        Path(tmp.name).replace(path)
    _audit(archive, principal, found, "thumbnail")
    return Response(
        body, media_type=options.media_type, headers={"Cache-Control": "private, max-age=86400"}
    )


@router.get("/studies/{study}/thumbnail")
def study_thumbnail(
    study: str,
    request: Request,
    principal: RetrievePrincipal,
    query: Annotated[RenderQuery, Depends(render_query)],
) -> Response:
    return _thumbnail(request, principal, query, _instances(_archive(request), principal, study))


@router.get("/studies/{study}/series/{series}/thumbnail")
def series_thumbnail(
    study: str,
    series: str,
    request: Request,
    principal: RetrievePrincipal,
    query: Annotated[RenderQuery, Depends(render_query)],
) -> Response:
    found = _instances(_archive(request), principal, study, series)
    return _thumbnail(request, principal, query, found)


@router.get("/studies/{study}/series/{series}/instances/{instance}/thumbnail")
def instance_thumbnail(
    study: str,
    series: str,
    instance: str,
    request: Request,
    principal: RetrievePrincipal,
    query: Annotated[RenderQuery, Depends(render_query)],
) -> Response:
    found = _instances(_archive(request), principal, study, series, instance)
    return _thumbnail(request, principal, query, found)
