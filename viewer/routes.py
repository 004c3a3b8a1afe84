"""Serve the built viewer (viewer/dist) at /viewer/.

The files are our own static code and carry no patient data, so the routes
are public (listed in pacs.auth.policy.PUBLIC_ROUTES); the pages fetch
everything else through DICOMweb with the user's session or share cookie.
The requested path never reaches the file system as given: it is resolved
under dist/ and refused unless the result is a file inside dist/.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

router = APIRouter()

DIST = Path(__file__).resolve().parent / "dist"
# Vite names every file under assets/ after its content hash: it never changes, cache it a year.
IMMUTABLE = "public, max-age=31536000, immutable"
# index.html names the current assets, so browsers must revalidate it.
REVALIDATE = "no-cache"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def resolve_in_dist(path: str, dist: Path = DIST) -> Path | None:
    """The file under ``dist`` that ``path`` names, or None when it does not name one there."""
    if "\x00" in path or "\\" in path:
        return None
    root = dist.resolve()
    candidate = (root / path.lstrip("/")).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def media_type(path: Path) -> str:
    return (
        MEDIA_TYPES.get(path.suffix)
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


def _file(path: Path) -> FileResponse:
    hashed = path.parent.name == "assets"
    headers = {"Cache-Control": IMMUTABLE if hashed else REVALIDATE}
    return FileResponse(path, media_type=media_type(path), headers=headers)


def _not_built() -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, "the viewer is not built: run `make viewer` (needs Node.js)"
    )


@router.get("/viewer", include_in_schema=False)
def viewer_without_slash(request: Request) -> RedirectResponse:
    """Relative asset paths need the trailing slash."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/viewer/{query}", status_code=308)


@router.get("/viewer/", include_in_schema=False)
def viewer_index() -> FileResponse:
    found = resolve_in_dist("index.html")
    if found is None:
        raise _not_built()
    return _file(found)


# A page of the app (/viewer/orders, /viewer/admin/users): letters, digits, - and _ in segments,
# no dot (files have one), not under assets/.
APP_PAGE = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*/?")


def app_page(path: str) -> HTMLResponse | None:
    """index.html for a page of the app reloaded or linked to directly, else None.

    The build names its files relative to /viewer/ (``./assets/...``, so it also works behind a
    path prefix); one level deeper they are rewritten to ``../assets/...`` and so on.
    """
    if not APP_PAGE.fullmatch(path) or path.split("/")[0] == "assets":
        return None
    found = resolve_in_dist("index.html")
    if found is None:
        raise _not_built()
    up = "../" * path.count("/")
    page = found.read_text(encoding="utf-8")
    if up:
        page = page.replace('="./', f'="{up}')
    return HTMLResponse(page, headers={"Cache-Control": REVALIDATE})


@router.get("/viewer/{path:path}", include_in_schema=False)
def viewer_file(path: str) -> Response:
    found = resolve_in_dist(path)
    if found is not None:
        return _file(found)
    page = app_page(path)
    if page is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such viewer file")
    return page
