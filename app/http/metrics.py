"""``/metrics`` for Prometheus, and the timing of every HTTP request.

Requests are timed by route *template* (``/dicom-web/studies/{study}``), never
the raw path: a UID in a label would make one series per study. A request no
route matched is labelled ``unmatched``.

Who may scrape: the text holds no patient data, but a hospital network is not
trusted, so a scraper on this machine (loopback, e.g. a local Prometheus or
node agent) needs nothing, and any other needs a credential allowed the
``metrics`` operation (an admin, or an integration API token).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pacs.archive import Archive
from pacs.auth.http import authorize, client_address
from pacs.metrics import instruments
from pacs.metrics.exposition import CONTENT_TYPE, ScrapeTimeGauges, render

OPERATION = "metrics"
_authorized = authorize(OPERATION)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def scraper(request: Request) -> None:
    """Let a loopback scraper through; anyone else needs the ``metrics`` operation."""
    if not _loopback(client_address(request)):
        _authorized(request)


scraper.operation = OPERATION  # type: ignore[attr-defined]  # read by the route audit test

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, _: Annotated[None, Depends(scraper)]) -> Response:
    archive: Archive = request.app.state.archive
    gauges = ScrapeTimeGauges(archive.jobs.counts, archive.audit.queue_depth)
    return Response(render(gauges), media_type=CONTENT_TYPE)


class RequestTiming:
    """ASGI middleware: ``pacs_http_request_seconds`` by route template, method and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.histogram = instruments().http_request_seconds
        self._by_route: dict[int, str] | None = None

    def _templates(self, scope: Scope) -> dict[int, str]:
        """Each route object's full path template, read once from the application.

        ``scope["route"]`` is the route as its router declared it, without the
        prefix the router was included under (``/dicom-web``).
        """
        if self._by_route is None:
            by_route: dict[int, str] = {}
            for path, route in _walk(scope["app"].routes, ""):
                by_route.setdefault(id(route), path)
            self._by_route = by_route
        return self._by_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = "unmatched"
            if route is not None:
                templates = self._templates(scope)
                template = templates.get(id(route)) or str(getattr(route, "path", "unmatched"))
            self.histogram.labels(template, scope["method"], f"{status // 100}xx").observe(
                time.perf_counter() - started
            )


def _walk(routes: Iterable[Any], prefix: str) -> Iterator[tuple[str, object]]:
    """(full path, route) for every route, through included routers and mounts."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI 0.16x keeps included routers lazily
            inner = prefix + getattr(route.include_context, "prefix", "")
            yield from _walk(route.original_router.routes, inner)
        elif isinstance(route, Mount):
            yield from _walk(route.routes, prefix + route.path)
        elif isinstance(route, BaseRoute) and hasattr(route, "path"):
            yield prefix + route.path, route


def install_metrics(app: FastAPI) -> None:
    app.include_router(router)
    app.add_middleware(RequestTiming)
