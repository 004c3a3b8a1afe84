"""Where the HTTP server may listen, and with which TLS options.

Passwords, tokens and images must never cross a network in clear text, so a
non-loopback address without a certificate is refused at start-up unless the
administrator declares a TLS-terminating proxy in front (the usual hospital
set-up behind nginx or a load balancer).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import uvicorn

from pacs.settings import Settings


class InsecureListen(Exception):
    """The settings would expose plain HTTP to the network."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS keyword arguments; raise :class:`InsecureListen` for a plain public bind."""
    if settings.tls_cert_file and settings.tls_key_file:
        return {
            "ssl_certfile": str(settings.tls_cert_file),
            "ssl_keyfile": str(settings.tls_key_file),
            # Python's ssl defaults: TLS 1.2 minimum, modern ciphers.
        }
    if settings.tls_cert_file or settings.tls_key_file:
        raise InsecureListen("PACS_TLS_CERT_FILE and PACS_TLS_KEY_FILE must be set together")
    if is_loopback(settings.http_host) or settings.behind_tls_proxy:
        return {}
    raise InsecureListen(
        f"refusing plain HTTP on {settings.http_host}: set PACS_TLS_CERT_FILE and "
        "PACS_TLS_KEY_FILE, or PACS_BEHIND_TLS_PROXY=true when a TLS proxy is in front"
    )


def http_config(settings: Settings, app: Any) -> uvicorn.Config:
    """uvicorn's settings for ``app``, the same in the main process and in every HTTP worker.

    Raises :class:`InsecureListen` as :func:`uvicorn_tls_options` does.
    """
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=30,
        proxy_headers=settings.behind_tls_proxy,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        **uvicorn_tls_options(settings),
    )
