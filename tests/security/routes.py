"""Every API route of the application with its full path, whatever FastAPI does with routers.

FastAPI 0.16x keeps included routers as lazy ``_IncludedRouter`` entries in
``app.routes`` instead of copying their routes; walking only ``APIRoute``
instances there would silently see two routes and check nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute


def _walk(routes: Iterable[Any], prefix: str) -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            inner_prefix = prefix + getattr(route.include_context, "prefix", "")
            yield from _walk(route.original_router.routes, inner_prefix)
        elif hasattr(route, "routes"):  # Starlette Mount / older FastAPI
            yield from _walk(route.routes, prefix + getattr(route, "path", ""))


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    return list(_walk(app.routes, ""))


def sample_path(path: str) -> str:
    """The route's path with every parameter replaced by a harmless value."""
    import re

    return re.sub(r"\{[^}]+\}", "1.2.3", path)
