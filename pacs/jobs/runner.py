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
import time
import traceback
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from pacs.jobs.queue import JobQueue, JobView
from pacs.jobs.registry import HandlerRegistry
from pacs.metrics import instruments

log = logging.getLogger(__name__)


def worker_name() -> str:
    """Who holds a lease, for administrators reading the job list: host, process, instance."""
    return f"{socket.gethostname()[:80]}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


@dataclass
class _Attempt:
    job: JobView
    thread: threading.Thread
    started: float  # time.monotonic()


class Runner:
    """``threads`` workers over one queue, for every kind the registry knows.

    The heartbeat renews the lease of every running attempt, except one that has
    run longer than its kind's ``max_run_s``: that attempt is recorded as failed
    (queued again after back-off, or dead-lettered), its thread is retired (it ends
    when its handler returns, recording nothing) and a new thread takes its place.
    Before, a hung handler's lease was renewed forever: the job stayed "running"
    and the thread was lost to every other job.
    """

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
        self._running: dict[int, _Attempt] = {}
        self._abandoned: set[int] = set()  # attempts given up, their handlers still running
        self._retired: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()

    def start(self) -> None:
        for _ in range(self.threads):
            self._start_thread()
        heartbeat = threading.Thread(target=self._heartbeat, name="job-lease", daemon=True)
        heartbeat.start()
        self._heartbeat_thread = heartbeat
        log.info(
            "job runner %s: %d threads for %s", self.worker, self.threads, self.registry.kinds()
        )

    def _start_thread(self) -> None:
        name = f"job-runner-{len(self._threads)}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Take no new job; wait up to ``timeout`` s for running ones (their leases then lapse)."""
        self._stop.set()
        self.queue.notify()
        for thread in list(self._threads):
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
            self._running[job.id] = _Attempt(job, threading.current_thread(), time.monotonic())
        try:
            self._run(job)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        return True

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if threading.current_thread() in self._retired:
                    self._retired.discard(threading.current_thread())
                    return  # a thread replaced it while its handler hung
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
            if self._was_abandoned(job):
                return
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
        if self._was_abandoned(job):
            return
        if not self.queue.complete(job.id, self.worker):
            log.info("job %d (%s) finished after it was cancelled or re-leased", job.id, job.kind)

    def _was_abandoned(self, job: JobView) -> bool:
        """Whether the heartbeat gave this attempt up (its outcome is no longer ours)."""
        with self._lock:
            if job.id not in self._abandoned:
                return False
            self._abandoned.discard(job.id)
        log.warning("job %d (%s) returned after it was given up: outcome ignored", job.id, job.kind)
        return True

    def _heartbeat(self) -> None:
        interval = max(0.05, self.lease_s / 3)
        while not self._heartbeat_stop.wait(interval):
            now = time.monotonic()
            with self._lock:
                running = dict(self._running)
            overdue = [a for a in running.values() if now - a.started > self._limit(a.job)]
            for attempt in overdue:
                self._give_up(attempt)
            live = [job_id for job_id in running if job_id not in {a.job.id for a in overdue}]
            try:
                self.queue.renew(live, self.worker, self.lease_s)
            except SQLAlchemyError as exc:
                log.warning("job leases not renewed: %s", exc.__class__.__name__)

    def _limit(self, job: JobView) -> float:
        registration = self.registry.get(job.kind)
        return registration.max_run_s if registration is not None else float("inf")

    def _give_up(self, attempt: _Attempt) -> None:
        """Record an attempt that ran past its kind's limit as failed; replace its thread."""
        job = attempt.job
        registration = self.registry.get(job.kind)
        assert registration is not None
        with self._lock:
            if self._running.pop(job.id, None) is None:
                return  # it finished meanwhile
            self._abandoned.add(job.id)
            self._retired.add(attempt.thread)
        error = f"ran longer than {registration.max_run_s:g} s (limit of {job.kind}): given up"
        try:
            state = self.queue.fail(
                job,
                self.worker,
                error,
                backoff_s=registration.backoff_s,
                backoff_cap_s=registration.backoff_cap_s,
            )
        except SQLAlchemyError as exc:  # the lease lapses instead; the job is claimed again
            log.warning("job %d not marked failed: %s", job.id, exc.__class__.__name__)
            state = None
        instruments().job_failures.labels(job.kind, state or "lost").inc()
        log.error("job %d (%s) attempt %d: %s -> %s", job.id, job.kind, job.attempts, error, state)
        if not self._stop.is_set():
            self._start_thread()
