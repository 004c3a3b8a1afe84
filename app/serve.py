"""``pacs serve``: the DIMSE listener, the HTTP server and job runners in one process.

``--role`` picks what this process runs: ``all`` (the default: DIMSE with its
worker processes, HTTP, job runner threads and the scheduler), ``http``,
``dimse``, ``jobs`` (runners and scheduler only), so a site can put job work
on nodes of its own, or ``hl7`` (the HIS's MLLP listener only). ``all`` also runs
the HL7 listener (``PACS_HL7_PORT``, 0: off); if its port is taken there, the
error is logged and the rest serves on (images must keep arriving). The
scheduler runs wherever jobs run; one leader among them runs the periodic tasks
(see pacs.jobs.scheduler).

Stop order on SIGTERM/SIGINT: uvicorn stops taking requests and finishes the
ones in flight, then the DIMSE listeners (ours and the workers', see
``dicom_processes``) stop accepting and let running associations finish, so no
acknowledged image is cut off half-way; job runners finish their current job.
HTTP worker processes (``http_processes``) finish their requests the same way.
"""

from __future__ import annotations

import logging
import signal
import socket
import tempfile
import threading
from enum import StrEnum
from pathlib import Path

import uvicorn

from app.http.app import create_app
from app.http.transport import InsecureListen, http_config
from app.workers import SharedListeners, WorkerPlan, WorkerPool
from hl7v2.listener import Listener, listener_for
from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.dimse.spool import SPOOL_PREFIX
from pacs.index.migrate import SchemaNotAtHead
from pacs.metrics import multiprocess as metrics_multiprocess
from pacs.settings import Settings

log = logging.getLogger(__name__)


class Role(StrEnum):
    ALL = "all"
    HTTP = "http"
    DIMSE = "dimse"
    JOBS = "jobs"
    HL7 = "hl7"

    @property
    def runs_http(self) -> bool:
        return self in (Role.ALL, Role.HTTP)

    @property
    def runs_dimse(self) -> bool:
        return self in (Role.ALL, Role.DIMSE)

    @property
    def runs_jobs(self) -> bool:
        return self in (Role.ALL, Role.JOBS)

    @property
    def runs_hl7(self) -> bool:
        return self in (Role.ALL, Role.HL7)


def _bootstrap_admin(archive: Archive) -> None:
    """On first start, create the admin account and show its password exactly once."""
    given = archive.settings.admin_password
    password = archive.auth.ensure_admin(given.get_secret_value() if given else None)
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


def serve(settings: Settings, role: Role = Role.ALL) -> int:
    # Before anything counts: the workers inherit the folder and add to it.
    metrics_multiprocess.enable(settings.data_dir / "metrics")
    http: uvicorn.Config | None = None
    if role.runs_http:
        try:
            http = http_config(settings, None)  # the app comes once the archive is open
        except InsecureListen as exc:
            log.error("%s", exc)
            return 2
    try:
        archive = Archive.open(settings)
    except SchemaNotAtHead as exc:
        log.error("%s", exc)
        return 2
    plan = WorkerPlan.for_settings(settings, dimse=role.runs_dimse, http=role.runs_http)
    dimse = workers = jobs = None
    hl7: Listener | None = None
    try:
        if role.runs_http:
            _bootstrap_admin(archive)
        listeners = SharedListeners()
        if role.runs_dimse:
            assert settings.spool_dir is not None  # derived from data_dir when unset
            use_spool(settings.spool_dir)
            dimse = DimseServer(archive)
            dimse.bind()
            if plan.dimse > 1:
                listeners = SharedListeners(dimse_fds=dimse.share_listeners())
        http_socket: socket.socket | None = None
        if http is not None and plan.http > 1:
            http_socket = http.bind_socket()  # listens once a uvicorn serves on it
            listeners = SharedListeners(listeners.dimse_fds, http_socket.fileno())
        if role.runs_jobs:
            jobs = archive.jobs.start()
        if role.runs_hl7 and settings.hl7_port:
            hl7 = listener_for(archive)
            try:
                hl7.start()
            except OSError as exc:
                log.error("HL7 listener on %s:%s: %s", settings.hl7_host, settings.hl7_port, exc)
                hl7 = None
                if role is Role.HL7:
                    return 2
        # Workers last: an HTTP worker answers as soon as it is ready, and a client
        # that saw /health answer expects the HL7 listener and the jobs to run too.
        if plan.workers:
            if not role.runs_dimse:
                assert settings.spool_dir is not None
                settings.spool_dir.mkdir(parents=True, exist_ok=True)  # STOW spools there
            workers = WorkerPool.start(settings, plan, listeners)
            workers.wait_ready()  # else the first associations would all land here
        if dimse is not None:
            dimse.start()
        if http is not None:
            http.app = create_app(archive)
            _run_http(http, http_socket)
        else:
            _wait_for_stop_signal(role)
    finally:
        if hl7 is not None:
            hl7.stop()
        if workers is not None:
            log.info("stopping worker processes; waiting for their requests and associations")
            workers.ask_to_stop()
        if dimse is not None:
            log.info("stopping DICOM listener; waiting for running associations")
            dimse.stop()
        if workers is not None:
            workers.wait()
        if jobs is not None:
            log.info("stopping job runners; waiting for running jobs")
            jobs.stop()
        archive.close()
    return 0


def _run_http(config: uvicorn.Config, shared: socket.socket | None) -> None:
    """Serve HTTP in this thread until SIGTERM/SIGINT (on ``shared`` when workers share it)."""
    server = uvicorn.Server(config)
    # uvicorn re-raises the stop signal once it has shut down, restoring the
    # handler found at start; with Python's default one the process would die
    # there, before the DIMSE listener could drain. Ours just asks to stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    scheme = "https" if config.is_ssl else "http"
    log.info("HTTP on %s://%s:%s", scheme, config.host, config.port)
    server.run(sockets=[shared] if shared is not None else None)


def _wait_for_stop_signal(role: Role) -> None:
    """Without HTTP, the main thread just waits for SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("serving role %s; waiting for SIGTERM", role)
    while not stop.wait(3600):
        pass
