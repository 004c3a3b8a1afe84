"""Pages the server writes itself, in Vietnamese or English: the status page, the
favicon, and error pages for a browser that navigated to a page.

The language is negotiated like everywhere else (``pacs.lang`` cookie, then
Accept-Language, then Vietnamese). APIs (``/api``, ``/dicom-web``, ``/fhir``...)
keep answering errors as JSON: a script reads ``detail``; a person who typed or
followed a link to a page reads a sentence in their language instead.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pacs import __version__
from pacs.archive import Archive
from pacs.i18n import negotiate, translate
from pacs.i18n.page import html_page

FAVICON = Path(__file__).resolve().parent / "favicon.ico"
# Where errors stay JSON whoever asks: programs read these.
API_PREFIXES = ("/api/", "/dicom-web", "/fhir", "/wado", "/metrics", "/health", "/login", "/logout")
ERROR_TEXTS = {
    401: "errors.unauthenticated",
    403: "errors.forbidden",
    404: "errors.not_found",
    429: "errors.rate_limited",
    503: "errors.unavailable",
}


def language(request: Request) -> str:
    return negotiate(request.cookies, request.headers.get("accept-language"))


def status_html(archive: Archive, lang: str) -> str:
    """Counts and health only, no names: for the IT person who just ran `make run`."""
    checks = archive.health()
    counts = archive.counts()
    s = archive.settings

    def t(key: str, **params: Any) -> str:
        return html.escape(translate(f"pages.{key}", lang, **params))

    def health(value: str) -> str:
        return t("ok") if value == "ok" else html.escape(value)

    rows = [
        (t("dicom"), t("dicom_value", ae_title=s.ae_title, port=s.dicom_port)),
        (t("index"), health(checks["index"])),
        (t("storage"), health(checks["storage"])),
        (t("studies"), str(counts["studies"])),
        (t("series"), str(counts["series"])),
        (t("instances"), str(counts["instances"])),
    ]
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    other = "en" if lang == "vi" else "vi"
    body = (
        f"<h1>{t('status_title')}</h1><p>{t('version', version=__version__)}</p>"
        f"<nav><a id='viewer' href='viewer/'>{t('open_viewer')}</a>"
        f"<a id='login' href='viewer/login'>{t('log_in')}</a>"
        f"<a id='lang' href='?lang={other}' hreflang='{other}'>{t('other_language')}</a></nav>"
        f"<table>{table}</table>"
    )
    return html_page(lang, translate("pages.status_title", lang), body)


def status_page(request: Request, archive: Archive) -> HTMLResponse:
    """``?lang=en`` (or ``vi``) switches and remembers the language, as the web app does."""
    chosen = request.query_params.get("lang", "")
    lang = chosen if chosen in ("vi", "en") else language(request)
    response = HTMLResponse(status_html(archive, lang))
    if chosen == lang:
        response.set_cookie("pacs.lang", lang, max_age=31536000, samesite="lax", path="/")
    return response


def favicon() -> Response:
    return Response(
        FAVICON.read_bytes(),
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _wants_page(request: Request) -> bool:
    """A browser navigating to a page (not a script, not an API)."""
    if request.url.path.startswith(API_PREFIXES):
        return False
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in request.headers.get("accept", "")


def error_page(
    request: Request, status_code: int, headers: Mapping[str, str] | None
) -> HTMLResponse:
    lang = language(request)
    key = ERROR_TEXTS.get(status_code)
    seconds = (headers or {}).get("Retry-After", "60")
    if key is None:
        text = translate("pages.error_status", lang, status=status_code)
    else:
        text = translate(key, lang, seconds=seconds) if status_code == 429 else translate(key, lang)
    title = translate("errors.title", lang)
    body = (
        f"<h1>{html.escape(title)} {status_code}</h1><p role='alert'>{html.escape(text)}</p>"
        f"<p><a href='/'>{html.escape(translate('pages.back_home', lang))}</a></p>"
    )
    page = html_page(lang, title, body)
    return HTMLResponse(page, status_code=status_code, headers=dict(headers or {}))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _wants_page(request) and exc.status_code >= 400:
        return error_page(request, exc.status_code, exc.headers)
    return await http_exception_handler(request, exc)


def install_pages(app: FastAPI) -> None:
    """The error pages for navigations (JSON stays JSON for everything else)."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
