"""One index writer at a time on SQLite, across threads and across processes.

SQLite takes one writer at a time. A writer that finds the database locked
gets SQLITE_BUSY, and the busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25,
50, 50, 100 ms between retries: with several writers that back-off, not the
work, sets the pace. A thread lock queued the writers of one process (four
associations in one process went from the back-off's pace to the disk's);
the DIMSE worker processes (one per CPU) still met each other through
SQLITE_BUSY. An advisory ``flock`` on a file beside the database queues them
in the kernel instead, which wakes the next writer the moment the lock is
released; the kernel drops it when a process dies, so a killed worker never
holds it. Other writers (jobs, audit, HTTP) do not take it and keep SQLite's
own waiting: the lock only orders the ingest writers among themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from sqlalchemy import Engine


class SqliteWriterLock:
    """A thread lock plus, for a database file, an exclusive ``flock`` on ``<file>-writer.lock``.

    Used as ``with lock:``; not re-entrant (neither is the thread lock inside).
    """

    def __init__(self, database: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self.path = database.with_name(database.name + "-writer.lock") if database else None
        self._fd: int | None = None
        self._pid = 0

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
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            fd = self._fd if self._pid == os.getpid() else None
            if fd is not None and self.path is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def writer_lock(engine: Engine) -> contextlib.AbstractContextManager[None]:
    """The ingest writers' lock for ``engine``: none where the database takes many writers."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    database = engine.url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    return SqliteWriterLock(None if in_memory else Path(database))
