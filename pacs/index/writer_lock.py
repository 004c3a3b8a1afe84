"""One index writer at a time on SQLite, across threads and across processes.

SQLite takes one writer at a time. A writer that finds the database locked
gets SQLITE_BUSY, and the busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25,
50, 50, 100 ms between retries: with several writers that back-off, not the
work, sets the pace. A thread lock queued the writers of one process (four
associations in one process went from the back-off's pace to the disk's);
the DIMSE worker processes (one per CPU) still met each other through
SQLITE_BUSY. An advisory ``flock`` on a file beside the database queues them
instead (polled every 0.5 to 5 ms, not 1 to 100); the kernel drops it when a
process dies, so a killed worker never holds it. Other writers (jobs, audit,
HTTP) do not take it and keep SQLite's own waiting: the lock only orders the
ingest writers among themselves.

The wait for the lock is bounded (``WAIT_S``, the default index busy timeout):
when the database is held for long (a backup, an administrator's shell), a
queue of writers must not wait one busy timeout each in turn. Past the bound a
writer goes on without the lock and meets SQLite's own busy timeout, which
answers it (503 / 0xA700) like any other writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path

from sqlalchemy import Engine

WAIT_S = 5.0


class SqliteWriterLock:
    """A thread lock plus, for a database file, an exclusive ``flock`` on ``<file>-writer.lock``.

    Used as ``with lock:``; not re-entrant (neither is the thread lock inside).
    """

    def __init__(self, database: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self.path = database.with_name(database.name + "-writer.lock") if database else None
        self._fd: int | None = None
        self._pid = 0
        self._locked = False

    def _descriptor(self) -> int | None:
        """The lock file, opened once per process (a forked child opens its own)."""
        if self.path is None:
            return None
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            fd = self._descriptor()
            self._locked = fd is not None and _flock(fd, WAIT_S)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._locked and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._locked = False
            self._thread_lock.release()


def _flock(fd: int, wait_s: float) -> bool:
    """Take the exclusive lock within ``wait_s``; ``False`` when it stayed taken.

    The kernel queue has no timeout, so a held lock is polled: every 0.5 ms at
    first, at most every 5 ms (SQLite's busy handler reaches 100 ms).
    """
    deadline = time.monotonic() + wait_s
    pause = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.005)


def writer_lock(engine: Engine) -> contextlib.AbstractContextManager[None]:
    """The ingest writers' lock for ``engine``: none where the database takes many writers."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    database = engine.url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    return SqliteWriterLock(None if in_memory else Path(database))
