"""Runner threads: claim a due job, run its handler, record the outcome; renew leases meanwhile.

Threads, not processes: handlers mostly wait on the network or the database
(forwarding, HL7, FHIR). A site that wants job work off its DICOM and HTTP
nodes runs ``pacs serve --role jobs`` processes instead, as many as it likes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid

from sqlalchemy.exc import SQLAlchemyError

from pacs.jobs.queue import JobQueue, JobView
from pacs.jobs.registry import HandlerRegistry
from pacs.metrics import instruments

log = logging.getLogger(__name__)


def worker_name() -> str:
    """Who holds a lease, for administrators reading the job list: host, process, instance."""
    return f"{socket.gethostname()[:80]}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


class Runner:
    """``threads`` workers over one queue, for every kind the registry knows."""

    def __init__(
        self,
        queue: JobQueue,
        registry: HandlerRegistry,
        *,
        threads: int = 2,
        lease_s: float = 60.0,
        poll_s: float = 1.0,
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.threads = threads
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.worker = worker_name()
        self._stop = threading.Event()
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()

    def start(self) -> None:
        for index in range(self.threads):
            thread = threading.Thread(target=self._work, name=f"job-runner-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        heartbeat = threading.Thread(target=self._heartbeat, name="job-lease", daemon=True)
        heartbeat.start()
        self._heartbeat_thread = heartbeat
        log.info(
            "job runner %s: %d threads for %s", self.worker, self.threads, self.registry.kinds()
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Take no new job; wait up to ``timeout`` s for running ones (their leases then lapse)."""
        self._stop.set()
        self.queue.notify()
        for thread in self._threads:
            thread.join(timeout)
        self._heartbeat_stop.set()  # leases are renewed until the last job has finished
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout)

    def run_once(self) -> bool:
        """Claim and run one due job in this thread; whether there was one (tests, CLI)."""
        kinds = self.registry.kinds()
        job = self.queue.claim(self.worker, kinds, self.lease_s)
        if job is None:
            return False
        with self._lock:
            self._running.add(job.id)
        try:
            self._run(job)
        finally:
            with self._lock:
                self._running.discard(job.id)
        return True

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once():
                    continue
            except SQLAlchemyError as exc:  # the index is down: wait, do not spin
                log.warning("job runner: index unavailable: %s", exc.__class__.__name__)
            except Exception:  # a bug must not silently end this thread's work
                log.exception("job runner: unexpected error")
            self.queue.wait(self.poll_s)

    def _run(self, job: JobView) -> None:
        registration = self.registry.get(job.kind)
        assert registration is not None  # claimed only for registered kinds
        try:
            registration.handler(job.payload)
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            state = self.queue.fail(
                job,
                self.worker,
                error,
                backoff_s=registration.backoff_s,
                backoff_cap_s=registration.backoff_cap_s,
            )
            instruments().job_failures.labels(job.kind, state or "lost").inc()
            log.warning(
                "job %d (%s) attempt %d: %s -> %s", job.id, job.kind, job.attempts, error, state
            )
            return
        if not self.queue.complete(job.id, self.worker):
            log.info("job %d (%s) finished after it was cancelled or re-leased", job.id, job.kind)

    def _heartbeat(self) -> None:
        interval = max(0.05, self.lease_s / 3)
        while not self._heartbeat_stop.wait(interval):
            with self._lock:
                running = list(self._running)
            try:
                self.queue.renew(running, self.worker, self.lease_s)
            except SQLAlchemyError as exc:
                log.warning("job leases not renewed: %s", exc.__class__.__name__)
