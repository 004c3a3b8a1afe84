"""More processes answering DIMSE and HTTP on the same ports (dicom_, http_processes).

Python runs one thread at a time per process: with four modalities storing at
once, one process spent its core switching between their associations (each
instance cost half as much again as on a single association), and four
viewers or STOW clients on one HTTP process got no more done than one. Worker
processes accept on the listening sockets the main process opened, so they
share the ports, and each runs the same doors over its own archive connection.
Every piece of state they share lives in the index and the store, as with
several nodes behind a load balancer (DESIGN: scale-out): index rows are
written idempotently, the audit trail serializes its appends in the database,
and the login limiter counts failures there. Jobs, the scheduler and the HL7
listener stay in the main process.

The counts are separate (a site that only ingests wants DIMSE processes, one
that serves many viewers wants HTTP ones): ``max(dimse, http) - 1`` workers
start, the first ``dimse - 1`` answer DIMSE and the first ``http - 1`` answer
HTTP. The HTTP socket is bound here before any of them starts, and listens
only once a uvicorn serves on it, so an early client is refused rather than
left waiting on a socket nobody accepts on.

A worker dies with the main process however that one dies (a crash, ``kill
-9``): it holds the read end of a lifeline pipe whose only write end the main
process holds, and the kernel closes that end when the main process goes, so
the worker reads end-of-file and kills itself; nothing keeps the ports, and a
restart finds them free. (The kernel's parent-death signal was used before; it
follows the *thread* that started the worker, so a replacement started by the
watcher thread was killed at every normal stop, when that thread ended, cutting
its associations off.) On a normal stop the main process sends SIGTERM and
each worker, replacements included, finishes its requests and lets its running
associations finish, as the main process does.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from pacs.metrics.multiprocess import process_exited
from pacs.settings import Settings

if TYPE_CHECKING:
    import uvicorn

    from pacs.archive import Archive
    from pacs.dimse.server import DimseServer

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0
AUTO_MAX_PROCESSES = 4
RESPAWN_INTERVAL_S = 10.0


def _processes(configured: int) -> int:
    """``configured``, or for 0 one per CPU this process may run on, at most 4."""
    if configured:
        return configured
    if not sys.platform.startswith("linux"):
        return 1  # sharing one listening socket between processes is tested on Linux only
    return max(1, min(len(os.sched_getaffinity(0)), AUTO_MAX_PROCESSES))


def dimse_processes(settings: Settings) -> int:
    """How many processes answer DIMSE, the main one included (``dicom_processes``, 0: auto)."""
    return _processes(settings.dicom_processes)


def http_processes(settings: Settings) -> int:
    """How many processes answer HTTP, the main one included (``http_processes``, 0: auto)."""
    return _processes(settings.http_processes)


@dataclass(frozen=True)
class WorkerPlan:
    """How many processes answer each door, the main one included (0: the door is off here)."""

    dimse: int
    http: int

    @classmethod
    def for_settings(cls, settings: Settings, *, dimse: bool, http: bool) -> WorkerPlan:
        return cls(
            dimse=dimse_processes(settings) if dimse else 0,
            http=http_processes(settings) if http else 0,
        )

    @property
    def workers(self) -> int:
        """Processes to start besides the main one."""
        return max(self.dimse, self.http, 1) - 1

    def serves_dimse(self, slot: int) -> bool:
        return slot < self.dimse - 1

    def serves_http(self, slot: int) -> bool:
        return slot < self.http - 1


@dataclass(frozen=True)
class SharedListeners:
    """The listening sockets the main process opened, for the workers to accept on."""

    dimse_fds: list[int] = field(default_factory=list)  # the DIMSE port, then DICOM TLS if any
    http_fd: int | None = None


@dataclass(frozen=True)
class _WorkerOrders:
    """What the main process hands a worker on its stdin."""

    settings: Settings
    parent_pid: int
    dimse_fds: list[int]  # empty: this worker answers no DIMSE
    http_fd: int | None  # None: this worker answers no HTTP
    ready_fd: int | None  # written to once the worker accepts (not for a replacement)
    lifeline_fd: int  # read end of the pipe only the main process writes to (see above)

    @property
    def inherited(self) -> list[int]:
        http = [self.http_fd] if self.http_fd is not None else []
        ready = [self.ready_fd] if self.ready_fd is not None else []
        return [*self.dimse_fds, *http, *ready, self.lifeline_fd]


class WorkerPool:
    """The worker processes of one ``pacs serve``; one that dies is replaced."""

    def __init__(self, settings: Settings, plan: WorkerPlan, listeners: SharedListeners) -> None:
        self._settings = settings
        self._plan = plan
        self._listeners = listeners
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # no replacement starts once the stop has begun
        # Never written to: its write end closing (with the main process) is the signal.
        self._lifeline, self._lifeline_end = os.pipe()
        ready_read, ready_write = os.pipe()
        try:
            self.processes = [self._spawn(slot, ready_write) for slot in range(plan.workers)]
        finally:
            os.close(ready_write)
        self._ready_fd = ready_read
        self._started = [time.monotonic()] * plan.workers
        self._watcher = threading.Thread(target=self._replace_dead, name="workers")
        self._watcher.daemon = True

    @classmethod
    def start(cls, settings: Settings, plan: WorkerPlan, listeners: SharedListeners) -> WorkerPool:
        """Start ``plan.workers`` workers accepting on ``listeners`` (inheritable sockets)."""
        pool = cls(settings, plan, listeners)
        pool._watcher.start()
        log.info(
            "%d worker process(es) besides the main one: %d answer DIMSE, %d HTTP",
            plan.workers,
            max(plan.dimse - 1, 0),
            max(plan.http - 1, 0),
        )
        return pool

    def _spawn(self, slot: int, ready_fd: int | None) -> subprocess.Popen[bytes]:
        orders = _WorkerOrders(
            settings=self._settings,
            parent_pid=os.getpid(),
            dimse_fds=self._listeners.dimse_fds if self._plan.serves_dimse(slot) else [],
            http_fd=self._listeners.http_fd if self._plan.serves_http(slot) else None,
            ready_fd=ready_fd,
            lifeline_fd=self._lifeline,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "app.workers"],
            stdin=subprocess.PIPE,
            pass_fds=orders.inherited,
        )
        assert process.stdin is not None
        process.stdin.write(pickle.dumps(orders))
        process.stdin.close()
        return process

    def _replace_dead(self) -> None:
        """Start a new worker for each that exits on its own (at most one per slot per 10 s)."""
        while not self._stopping.wait(1.0):
            for slot, process in enumerate(self.processes):
                if process.poll() is None:
                    continue
                if time.monotonic() - self._started[slot] < RESPAWN_INTERVAL_S:
                    continue  # crashing at start: do not spin
                with self._lock:
                    if self._stopping.is_set():
                        return
                    log.error(
                        "worker %d exited with %s; starting another",
                        process.pid,
                        process.returncode,
                    )
                    process_exited(process.pid)
                    self.processes[slot] = self._spawn(slot, None)
                    self._started[slot] = time.monotonic()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker accepts (one byte each), or one exits, or ``timeout``.

        Raises RuntimeError when a worker exits before it is ready.
        """
        waiting = len(self.processes)
        deadline = time.monotonic() + timeout
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._ready_fd], [], [], left)[0]:
                    log.warning("%d worker(s) not ready in time; going on", waiting)
                    return
                got = os.read(self._ready_fd, waiting)
                if not got:  # every worker closed its end: one died before it was ready
                    raise RuntimeError("a worker process exited while starting (see its log)")
                waiting -= len(got)
        finally:
            os.close(self._ready_fd)

    def ask_to_stop(self) -> None:
        """Have every worker, replacements included, stop accepting and finish its work."""
        with self._lock:
            self._stopping.set()
            for process in self.processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)

    def wait(self, grace: float = STOP_GRACE_S) -> None:
        """Wait for the workers asked to stop; kill those still running after ``grace``."""
        self._watcher.join(timeout=5)
        deadline = time.monotonic() + grace + 5
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop; killing it", process.pid)
                process.kill()
                process.wait()
            process_exited(process.pid)
        for fd in (self._lifeline, self._lifeline_end):
            os.close(fd)


def _die_with_parent(orders: _WorkerOrders) -> None:
    """Kill this process as soon as the main one is gone, however it went.

    The lifeline's write end lives only in the main process: end-of-file on
    the read end means the kernel closed it, the main process having died.
    SIGKILL, not an exit: nothing of ours may run on (atexit, a draining
    association) and keep a listening socket open.
    """

    def watch() -> None:
        while True:
            try:
                if not os.read(orders.lifeline_fd, 1):
                    break
            except InterruptedError:
                continue
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="worker-lifeline", daemon=True).start()
    if os.getppid() != orders.parent_pid:  # it died before the pipe was watched: EOF anyway
        os.kill(os.getpid(), signal.SIGKILL)


def _say_ready(orders: _WorkerOrders) -> None:
    if orders.ready_fd is not None:
        os.write(orders.ready_fd, b"r")
        os.close(orders.ready_fd)
    log.info("worker %d ready", os.getpid())


def _start_dimse(archive: Archive, fds: list[int]) -> DimseServer:
    from pacs.dimse.server import DimseServer

    dimse = DimseServer(archive)
    listen_fd, *tls = fds
    dimse.bind(listen_fd=listen_fd, tls_listen_fd=tls[0] if tls else None)
    dimse.start()
    return dimse


def _http_server(archive: Archive, orders: _WorkerOrders) -> uvicorn.Server:
    """The worker's uvicorn: SIGINT is left to the main process, readiness said once it serves."""
    import uvicorn

    from app.http.app import create_app
    from app.http.transport import http_config

    class WorkerServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                _say_ready(orders)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig != signal.SIGINT:  # see run_worker
                super().handle_exit(sig, frame)

    return WorkerServer(http_config(archive.settings, create_app(archive)))


def run_worker(orders: _WorkerOrders) -> int:
    # Imported here: the main process imports this module only to start workers.
    from pacs.archive import Archive

    _die_with_parent(orders)
    settings = orders.settings
    assert settings.spool_dir is not None
    tempfile.tempdir = str(settings.spool_dir)  # the main process created and cleared it
    archive = Archive.open(settings, migrate=False)  # the main process migrated
    http = _http_server(archive, orders) if orders.http_fd is not None else None
    stopping = threading.Event()

    def stop(*_: object) -> None:
        # Also before uvicorn runs: it checks should_exit once started, so a
        # SIGTERM during start-up still stops it.
        stopping.set()
        if http is not None:
            http.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C in a terminal reaches the whole process group; the main process
    # handles it and tells each worker (SIGTERM), so none stops on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    dimse = _start_dimse(archive, orders.dimse_fds) if orders.dimse_fds else None
    try:
        if http is not None and orders.http_fd is not None:
            http.run(sockets=[socket.socket(fileno=orders.http_fd)])
        else:
            _say_ready(orders)
            stopping.wait()
    finally:
        try:
            if dimse is not None:
                dimse.stop(grace=STOP_GRACE_S)
        finally:
            archive.close()
    return 0


def main() -> int:
    orders: _WorkerOrders = pickle.load(sys.stdin.buffer)  # from our own parent, see _spawn
    logging.basicConfig(
        level=getattr(logging, orders.settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    return run_worker(orders)


if __name__ == "__main__":
    sys.exit(main())
