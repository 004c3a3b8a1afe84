"""``pacs serve``: the DIMSE listener and the HTTP server in one process (plus DIMSE workers).

Stop order on SIGTERM/SIGINT: uvicorn stops taking requests and finishes the
ones in flight, then the DIMSE listeners (ours and the workers', see
``dicom_processes``) stop accepting and let running associations finish, so no
acknowledged image is cut off half-way.
"""

from __future__ import annotations

import logging
import signal
import tempfile
from pathlib import Path

import uvicorn

from app.http.app import create_app
from app.http.transport import InsecureListen, uvicorn_tls_options
from pacs.archive import Archive
from pacs.auth.accounts import ensure_admin
from pacs.dimse.server import DimseServer
from pacs.dimse.spool import SPOOL_PREFIX
from pacs.dimse.workers import WorkerPool, dimse_processes
from pacs.settings import Settings

log = logging.getLogger(__name__)


def _bootstrap_admin(archive: Archive) -> None:
    """On first start, create the admin account and show its password exactly once."""
    given = archive.settings.admin_password
    password = ensure_admin(archive.sessions, given.get_secret_value() if given else None)
    if password is None:
        return
    if given:
        log.warning("created user 'admin' with the password from PACS_ADMIN_PASSWORD")
    else:
        print(
            "\n  First start: created user 'admin' with password  "
            f"{password}\n  It is shown only now; change it with `pacs user passwd admin`.\n",
            flush=True,
        )


def use_spool(folder: Path) -> None:
    """Received datasets are spooled in ``folder`` (pynetdicom writes them with ``tempfile``).

    On the data volume rather than /tmp: a multi-GB object does not fill a small
    /tmp, and beside the blobs a spool file is a hard link away from being stored.
    Files left by a crash (nothing was acknowledged from them) are removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    patterns = ("tmp*.dcm", f"{SPOOL_PREFIX}*.dcm", "retrieve-*.dcm")
    for leftover in [path for pattern in patterns for path in folder.glob(pattern)]:
        leftover.unlink(missing_ok=True)
    tempfile.tempdir = str(folder)


def serve(settings: Settings) -> int:
    try:
        tls = uvicorn_tls_options(settings)
    except InsecureListen as exc:
        log.error("%s", exc)
        return 2
    assert settings.spool_dir is not None  # derived from data_dir when unset
    use_spool(settings.spool_dir)
    archive = Archive.open(settings)
    _bootstrap_admin(archive)
    dimse = DimseServer(archive)
    dimse.bind()
    workers = None
    processes = dimse_processes(settings)
    if processes > 1:
        workers = WorkerPool.start(settings, dimse.share_listeners(), processes - 1)
        workers.wait_ready()  # else the first associations would all land here
    dimse.start()
    app = create_app(archive)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=30,
        proxy_headers=settings.behind_tls_proxy,
        **tls,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the stop signal once it has shut down, restoring the
    # handler found at start; with Python's default one the process would die
    # there, before the DIMSE listener could drain. Ours just asks to stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    scheme = "https" if tls else "http"
    log.info("HTTP on %s://%s:%s", scheme, settings.http_host, settings.http_port)
    try:
        server.run()
    finally:
        log.info("stopping DICOM listener; waiting for running associations")
        if workers is not None:
            workers.ask_to_stop()
        dimse.stop()
        if workers is not None:
            workers.wait()
        archive.close()
    return 0
