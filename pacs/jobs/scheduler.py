"""Periodic tasks, run by the one leader among the nodes (see :mod:`pacs.jobs.leader`).

Registering one is the whole API::

    archive.jobs.every("purge-deleted", 300, purge_due)

``purge_due()`` then runs about every 300 s on exactly one node of the cluster
(each node that runs the scheduler tries to lead; one wins). A periodic task
should be short: find what is due and enqueue jobs for it (with a
de-duplication key), so that the work itself is durable, retried and spread
over every runner. When the leader dies, another node takes over within a
tick or two and runs every task once soon after, so a task must not assume it
ran at the previous interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pacs.jobs.leader import Leadership

log = logging.getLogger(__name__)

Task = Callable[[], object]  # the result is ignored


@dataclass
class PeriodicTask:
    name: str
    interval_s: float
    run: Task
    next_at: float = field(default=0.0)  # monotonic; 0: as soon as this node leads


class PeriodicTasks:
    """The tasks registered on this node (every node registers the same ones at start)."""

    def __init__(self) -> None:
        self._tasks: dict[str, PeriodicTask] = {}
        self._lock = threading.Lock()

    def every(self, name: str, interval_s: float, task: Task) -> None:
        """Run ``task`` about every ``interval_s`` seconds on the leader; names are unique."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        with self._lock:
            if name in self._tasks:
                raise ValueError(f"a periodic task {name!r} is already registered")
            self._tasks[name] = PeriodicTask(name, interval_s, task)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tasks)

    def due(self, clock: float) -> list[PeriodicTask]:
        with self._lock:
            return [task for task in self._tasks.values() if task.next_at <= clock]

    def reset(self) -> None:
        """A node that has just become leader runs every task at once."""
        with self._lock:
            for task in self._tasks.values():
                task.next_at = 0.0

    def shortest_interval(self, default: float) -> float:
        with self._lock:
            return min((task.interval_s for task in self._tasks.values()), default=default)


class Scheduler:
    """A thread that tries to lead every ``tick_s`` and, while leading, runs due tasks."""

    def __init__(self, tasks: PeriodicTasks, leadership: Leadership, tick_s: float = 1.0) -> None:
        self.tasks = tasks
        self.leadership = leadership
        self.tick_s = tick_s
        self.leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.leadership.release()
        self.leading = False

    def tick(self) -> None:
        """One round: check the lead, run what is due (a task's failure is logged, not fatal)."""
        leading = self.leadership.try_lead()
        if leading and not self.leading:
            log.info("this node now leads the scheduler: %s", self.tasks.names())
            self.tasks.reset()
        elif self.leading and not leading:
            log.warning("this node no longer leads the scheduler")
        self.leading = leading
        if not leading:
            return
        for task in self.tasks.due(time.monotonic()):
            try:
                task.run()
            except Exception:
                log.exception("periodic task %s failed", task.name)
            task.next_at = time.monotonic() + task.interval_s

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # e.g. the leader lock's file unwritable: try again next tick
                log.exception("scheduler tick failed")
            wait = min(self.tick_s, self.tasks.shortest_interval(self.tick_s))
            self._stop.wait(wait)
