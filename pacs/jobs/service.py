"""What the archive exposes as ``archive.jobs``: the queue, its handlers, its periodic tasks.

Doors (the admin API, the CLI) list, retry, cancel and enqueue through this
object; core components register handlers and periodic tasks on it when the
archive is built, so every process (``--role all`` or ``--role jobs``) knows
the same kinds. ``pacs serve`` then calls :meth:`Jobs.start` for the roles that
run work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pacs.jobs.leader import leadership_for
from pacs.jobs.queue import DEFAULT_MAX_ATTEMPTS, JobQueue, JobView
from pacs.jobs.registry import Handler, HandlerRegistry
from pacs.jobs.runner import Runner
from pacs.jobs.scheduler import PeriodicTasks, Scheduler, Task

log = logging.getLogger(__name__)


@dataclass
class RunningJobs:
    """The runner threads and the scheduler one process started; stop them at shutdown."""

    runner: Runner | None
    scheduler: Scheduler | None

    def stop(self, timeout: float = 30.0) -> None:
        if self.scheduler is not None:
            self.scheduler.stop(timeout)
        if self.runner is not None:
            self.runner.stop(timeout)


class Jobs:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        engine: Engine,
        *,
        threads: int = 2,
        lease_s: float = 60.0,
        poll_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.queue = JobQueue(sessions)
        self.handlers = HandlerRegistry()
        self.periodic = PeriodicTasks()
        self.threads = threads
        self.lease_s = lease_s
        self.poll_s = poll_s
        # A lease that lapsed with no attempt left would otherwise stay "running" forever.
        self.every("bury-expired-jobs", max(1.0, lease_s / 2), self._bury_expired)

    # -- registration (core components, at start) ------------------------------------------

    def handle(
        self,
        kind: str,
        handler: Handler,
        *,
        backoff_s: float = 10.0,
        backoff_cap_s: float = 3600.0,
        max_run_s: float = 3600.0,
    ) -> None:
        """Run ``handler(payload)`` for jobs of ``kind`` (idempotent by contract; see registry).

        An attempt that runs longer than ``max_run_s`` is given up (a failed attempt).
        """
        self.handlers.register(
            kind, handler, backoff_s=backoff_s, backoff_cap_s=backoff_cap_s, max_run_s=max_run_s
        )

    def every(self, name: str, interval_s: float, task: Task) -> None:
        """Run ``task()`` about every ``interval_s`` s on the one leader node (see scheduler)."""
        self.periodic.every(name, interval_s, task)

    # -- doors ------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        dedup_key: str | None = None,
        delay_s: float = 0.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> int | None:
        """Queue a job; its id, or ``None`` when ``dedup_key`` already names one.
        :class:`ValueError` for a bad kind or attempt count."""
        return self.queue.enqueue(
            kind, payload, dedup_key=dedup_key, delay_s=delay_s, max_attempts=max_attempts
        )

    def list(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[JobView], int]:
        """A page of jobs, newest first, and the number matching; :class:`ValueError` for an
        unknown state."""
        return self.queue.list(state=state, kind=kind, limit=limit, offset=offset)

    def get(self, job_id: int) -> JobView:
        """The job; :class:`~pacs.jobs.queue.JobNotFound`."""
        return self.queue.get(job_id)

    def retry(self, job_id: int) -> JobView:
        """Queue again now, attempts reset; ``JobNotFound`` or ``JobStateError`` (running)."""
        return self.queue.retry(job_id)

    def cancel(self, job_id: int) -> JobView:
        """Cancel a queued or running job; ``JobNotFound`` or ``JobStateError``."""
        return self.queue.cancel(job_id)

    def counts(self) -> dict[str, int]:
        """Jobs per state."""
        return self.queue.counts()

    # -- the composition root ---------------------------------------------------------------

    def start(self, *, runners: bool = True, scheduler: bool = True) -> RunningJobs:
        """Start runner threads (``threads`` of them) and the leader-elected scheduler."""
        runner = None
        if runners and self.threads > 0:
            runner = Runner(
                self.queue,
                self.handlers,
                threads=self.threads,
                lease_s=self.lease_s,
                poll_s=self.poll_s,
            )
            runner.start()
        sched = None
        if scheduler:
            sched = Scheduler(self.periodic, leadership_for(self.engine))
            sched.start()
        return RunningJobs(runner, sched)

    def _bury_expired(self) -> None:
        buried = self.queue.bury_expired()
        if buried:
            log.warning("%d job(s) dead-lettered: lease expired on their last attempt", buried)
