"""CORS: let web viewers on other origins (OHIF, an EHR portal) call the DICOMweb API.

Starlette's middleware answers preflights before authentication (a preflight
carries no credentials) and puts the headers on every response, errors
included. Policy (``Settings.cors_origins``):

- ``["*"]`` (default): any origin may call us with a bearer token or Basic
  header it holds itself, but never with our cookies (no
  ``Access-Control-Allow-Credentials``), so a hostile page cannot ride on a
  logged-in browser session.
- explicit origins: only those are answered, the origin is echoed (with
  ``Vary: Origin``) and credentials are allowed, so a trusted viewer on another
  origin can use the session cookie.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from pacs.settings import Settings

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
EXPOSED = [
    "Content-Range",
    "Content-Length",
    "Accept-Ranges",
    "ETag",
    "Content-Location",
    "Location",
    "Warning",
    "WWW-Authenticate",
]


def install_cors(app: FastAPI, settings: Settings) -> None:
    wildcard = "*" in settings.cors_origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"] if wildcard else settings.cors_origins,
        allow_credentials=not wildcard,
        allow_methods=METHODS,
        allow_headers=["*"],
        expose_headers=EXPOSED,
        max_age=600,
    )
