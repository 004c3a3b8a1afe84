"""The public base URL of a request, for BulkDataURIs and RetrieveURLs.

Behind a reverse proxy the URL the client used (``https://pacs.example.org/pacs``)
is not the one we were called on (``http://127.0.0.1:8080``). The answer, in
order: the configured ``public_base_url``; else, when the request comes from a
trusted proxy (``forwarded_allow_ips``), ``Forwarded`` (RFC 7239) or
``X-Forwarded-Proto/Host/Prefix``; else the request's own scheme and Host.
Forwarded values are only taken when well-formed, because a URL we hand out
is one a client will send its credentials to.
"""

from __future__ import annotations

import re

from fastapi import Request

from pacs.settings import Settings

DICOMWEB_PREFIX = "/dicom-web"

_HOST = re.compile(r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*/?$")


def _forwarded_pairs(header: str) -> dict[str, str]:
    """Parameters of the first (client-most) element of a ``Forwarded`` header."""
    first = header.split(",")[0]
    pairs: dict[str, str] = {}
    for item in first.split(";"):
        name, _, value = item.partition("=")
        pairs[name.strip().lower()] = value.strip().strip('"')
    return pairs


def _first(value: str | None) -> str | None:
    return value.split(",")[0].strip() if value else None


def _trusted(request: Request, settings: Settings) -> bool:
    host = request.client.host if request.client else ""
    return "*" in settings.forwarded_allow_ips or host in settings.forwarded_allow_ips


def _with_server_port(host: str, scheme: str, server: tuple[str, int | None] | None) -> str:
    """Add the port we listen on to a Host header that lacks it.

    dicomweb-client (0.61) sends ``Host`` without the port; a URL built from it
    would point at port 80. Only done when no proxy header is present: a proxy
    says where clients really connect with ``Forwarded``/``X-Forwarded-*``.
    """
    if not server or server[1] is None or ":" in host.rsplit("]", 1)[-1]:
        return host
    default = 443 if scheme == "https" else 80
    return host if server[1] == default else f"{host}:{server[1]}"


def base_url(request: Request, settings: Settings) -> str:
    """Scheme, host and path prefix under which clients reach this server (no trailing slash)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    prefix = request.scope.get("root_path", "") or ""
    forwarded_by_proxy = any(
        name in request.headers for name in ("forwarded", "x-forwarded-host", "x-forwarded-proto")
    )
    if not forwarded_by_proxy:
        host = _with_server_port(host, scheme, request.scope.get("server"))
    elif _trusted(request, settings):
        forwarded = _forwarded_pairs(request.headers.get("forwarded", ""))
        proto = forwarded.get("proto") or _first(request.headers.get("x-forwarded-proto"))
        fwd_host = forwarded.get("host") or _first(request.headers.get("x-forwarded-host"))
        fwd_prefix = _first(request.headers.get("x-forwarded-prefix"))
        if proto and proto.lower() in ("http", "https"):
            scheme = proto.lower()
        if fwd_host and _HOST.match(fwd_host):
            host = fwd_host
        if fwd_prefix and _PREFIX.match(fwd_prefix):
            prefix = fwd_prefix
    if not _HOST.match(host):
        host = request.url.netloc
    return f"{scheme}://{host}{prefix.rstrip('/')}"


def dicomweb_root(request: Request, settings: Settings) -> str:
    """The DICOMweb service root, e.g. ``https://pacs.example.org/pacs/dicom-web``."""
    return base_url(request, settings) + DICOMWEB_PREFIX


def study_path(study_uid: str) -> str:
    return f"/studies/{study_uid}"


def instance_path(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
