"""Serve the installed OHIF build under /ohif/ with the configuration this server generates.

The files are OHIF's static code (no patient data); everything it shows comes
from /dicom-web, which authenticates every request. OHIF's volume tools need
SharedArrayBuffer, hence cross-origin isolation headers on its pages.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse

from viewer.ohif import app_config

router = APIRouter()

ISOLATION = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    # OHIF's bundle evaluates code and styles inline; scripts still come only from us.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
        "worker-src 'self' blob:; connect-src 'self' data: blob:; object-src 'none'; "
        "frame-ancestors 'none'"
    ),
}
mimetypes.add_type("application/wasm", ".wasm")


def _root(request: Request) -> Path:
    root = Path(request.app.state.archive.settings.ohif_dir).resolve()
    if not (root / "index.html").is_file():
        raise HTTPException(404, "OHIF is not installed on this server: run `make ohif`")
    return root


@router.get("/ohif/app-config.js")
def ohif_config(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    public = request.app.state.archive.settings.public_base_url
    root = (public.rstrip("/") if public else base) + "/dicom-web"
    return Response(
        app_config(root),
        media_type="text/javascript",
        headers={**ISOLATION, "Cache-Control": "no-cache"},
    )


@router.get("/ohif")
@router.get("/ohif/{path:path}")
def ohif_file(request: Request, path: str = "") -> Response:
    root = _root(request)
    candidate = (root / path).resolve() if path else root / "index.html"
    if root not in candidate.parents and candidate != root / "index.html":
        raise HTTPException(404, "not found")
    if not candidate.is_file():
        if "." in Path(path).name:  # a missing asset, not an app route
            raise HTTPException(404, "not found")
        candidate = root / "index.html"  # the single-page app's own routes (/ohif/viewer...)
    hashed = candidate.name != "index.html" and candidate.suffix in (".js", ".css", ".wasm")
    cache = "public, max-age=31536000, immutable" if hashed else "no-cache"
    return FileResponse(candidate, headers={**ISOLATION, "Cache-Control": cache})
