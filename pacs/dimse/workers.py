"""More processes answering DIMSE on the one port (``dicom_processes``).

Python runs one thread at a time per process: with four modalities storing at
once, one process spent its core switching between their associations (each
instance cost half as much again as on a single association). Worker
processes accept on the listening sockets the main process opened, so they
share the port, and each runs the same door over its own archive connection.
Every piece of state they share lives in the index and the store, as with
several nodes behind a load balancer (DESIGN: scale-out): index rows are
written idempotently and the audit trail serializes its appends in the
database.

A worker dies with the main process however that one dies (a crash, ``kill
-9``): it holds the read end of a lifeline pipe whose only write end the main
process holds, and the kernel closes that end when the main process goes, so
the worker reads end-of-file and kills itself; nothing keeps the port, and a
restart finds it free. (The kernel's parent-death signal was used before; it
follows the *thread* that started the worker, so a replacement started by the
watcher thread was killed at every normal stop, when that thread ended, cutting
its associations off.) On a normal stop the main process sends SIGTERM and
each worker, replacements included, lets its running associations finish, as
the main process does.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from pacs.metrics.multiprocess import process_exited
from pacs.settings import Settings

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0
AUTO_MAX_PROCESSES = 4
RESPAWN_INTERVAL_S = 10.0


def dimse_processes(settings: Settings) -> int:
    """How many processes answer DIMSE, the main one included (``dicom_processes``, 0: auto)."""
    if settings.dicom_processes:
        return settings.dicom_processes
    if not sys.platform.startswith("linux"):
        return 1  # sharing one listening socket between processes is tested on Linux only
    return max(1, min(len(os.sched_getaffinity(0)), AUTO_MAX_PROCESSES))


@dataclass(frozen=True)
class _WorkerOrders:
    """What the main process hands a worker on its stdin."""

    settings: Settings
    parent_pid: int
    listen_fds: list[int]  # the DIMSE port, then the DICOM TLS port if any
    ready_fd: int | None  # written to once the worker accepts (not for a replacement)
    lifeline_fd: int  # read end of the pipe only the main process writes to (see above)


class WorkerPool:
    """The worker processes of one ``pacs serve``; one that dies is replaced."""

    def __init__(self, settings: Settings, listen_fds: list[int], count: int) -> None:
        self._settings = settings
        self._listen_fds = listen_fds
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # no replacement starts once the stop has begun
        # Never written to: its write end closing (with the main process) is the signal.
        self._lifeline, self._lifeline_end = os.pipe()
        ready_read, ready_write = os.pipe()
        try:
            self.processes = [self._spawn(ready_write) for _ in range(count)]
        finally:
            os.close(ready_write)
        self._ready_fd = ready_read
        self._started = [time.monotonic()] * count
        self._watcher = threading.Thread(target=self._replace_dead, name="dimse-workers")
        self._watcher.daemon = True

    @classmethod
    def start(cls, settings: Settings, listen_fds: list[int], count: int) -> WorkerPool:
        """Start ``count`` workers accepting on ``listen_fds`` (inheritable, non-blocking)."""
        pool = cls(settings, listen_fds, count)
        pool._watcher.start()
        log.info("DIMSE: %d worker process(es) besides the main one", count)
        return pool

    def _spawn(self, ready_fd: int | None) -> subprocess.Popen[bytes]:
        orders = _WorkerOrders(
            self._settings, os.getpid(), self._listen_fds, ready_fd, self._lifeline
        )
        inherited = [*self._listen_fds, self._lifeline]
        process = subprocess.Popen(
            [sys.executable, "-m", "pacs.dimse.workers"],
            stdin=subprocess.PIPE,
            pass_fds=[*inherited, *([ready_fd] if ready_fd is not None else [])],
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
                        "DIMSE worker %d exited with %s; starting another",
                        process.pid,
                        process.returncode,
                    )
                    process_exited(process.pid)
                    self.processes[slot] = self._spawn(None)
                    self._started[slot] = time.monotonic()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker accepts (one byte each), or one exits, or ``timeout``."""
        waiting = len(self.processes)
        deadline = time.monotonic() + timeout
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._ready_fd], [], [], left)[0]:
                    log.warning("DIMSE: %d worker(s) not ready in time; going on", waiting)
                    return
                got = os.read(self._ready_fd, waiting)
                if not got:  # every worker closed its end: one died before it was ready
                    raise RuntimeError("a DIMSE worker exited while starting (see its log)")
                waiting -= len(got)
        finally:
            os.close(self._ready_fd)

    def ask_to_stop(self) -> None:
        """Have every worker, replacements included, stop accepting and finish its associations."""
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
                log.warning("DIMSE worker %d did not stop; killing it", process.pid)
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
    association) and keep the listening socket open.
    """

    def watch() -> None:
        while True:
            try:
                if not os.read(orders.lifeline_fd, 1):
                    break
            except InterruptedError:
                continue
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="dimse-lifeline", daemon=True).start()
    if os.getppid() != orders.parent_pid:  # it died before the pipe was watched: EOF anyway
        os.kill(os.getpid(), signal.SIGKILL)


def run_worker(orders: _WorkerOrders) -> int:
    # Imported here: the main process imports this module only to start workers.
    from pacs.archive import Archive
    from pacs.dimse.server import DimseServer

    _die_with_parent(orders)
    settings = orders.settings
    assert settings.spool_dir is not None
    tempfile.tempdir = str(settings.spool_dir)  # the main process created and cleared it
    archive = Archive.open(settings, migrate=False)  # the main process migrated
    dimse = DimseServer(archive)
    listen_fd, *tls = orders.listen_fds
    dimse.bind(listen_fd=listen_fd, tls_listen_fd=tls[0] if tls else None)
    dimse.start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # Ctrl-C in a terminal reaches the whole process group; the main process
    # handles it and tells each worker (SIGTERM), so none stops on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if orders.ready_fd is not None:
        os.write(orders.ready_fd, b"r")
        os.close(orders.ready_fd)
    log.info("DIMSE worker %d ready", os.getpid())
    stopping.wait()
    try:
        dimse.stop(grace=STOP_GRACE_S)
    finally:
        archive.close()
    return 0


def main() -> int:
    orders: _WorkerOrders = pickle.load(sys.stdin.buffer)  # from our own parent, see start()
    logging.basicConfig(
        level=getattr(logging, orders.settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    return run_worker(orders)


if __name__ == "__main__":
    sys.exit(main())
