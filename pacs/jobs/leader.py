"""Exactly one scheduler leader across the nodes that share an index database.

PostgreSQL: a session-level advisory lock, held on a connection kept open for
as long as this node leads. If the node dies, or only loses its connection,
the server drops the lock and another node takes it on its next try. The key
is derived from the schema, so archives in different schemas of one server
(and concurrent test runs) have a leader each.

SQLite: the database is one file on one machine; an exclusive ``flock`` on a
file beside it picks one leader among the processes that open it (several
``pacs serve`` on one folder), and the kernel drops it with the process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

LOCK_NAME = "pacs-scheduler"


class Leadership(Protocol):
    def try_lead(self) -> bool:
        """Whether this node leads now (taking the lead if it is free)."""

    def release(self) -> None:
        """Give the lead up (at a normal stop)."""


def leadership_for(engine: Engine) -> Leadership:
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    database = engine.url.database
    if not database or database == ":memory:":
        return AlwaysLeader()
    return FileLock(Path(database).with_name(Path(database).name + ".leader"))


class AlwaysLeader:
    """A private in-memory database has one process: it leads."""

    def try_lead(self) -> bool:
        return True

    def release(self) -> None:
        pass


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_lead(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class AdvisoryLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None

    def try_lead(self) -> bool:
        try:
            if self._connection is not None:
                # Still ours only while the session that holds it is alive.
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()  # never sit idle inside a transaction
                return True
            connection = self.engine.connect()
            schema = connection.scalar(text("SELECT current_schema()")) or ""
            key = _key(f"{LOCK_NAME}:{schema}")
            got = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
            connection.commit()  # end the implicit transaction; the lock is session-level
            if got:
                self._connection = connection
                return True
            connection.close()
            return False
        except SQLAlchemyError as exc:
            log.warning("scheduler leadership lost or not reachable: %s", exc.__class__.__name__)
            self._drop()
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock_all()"))
                self._connection.commit()
            except SQLAlchemyError:
                pass
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()  # never back to the pool: it may hold the lock
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None


def _key(name: str) -> int:
    """A signed 64-bit advisory-lock key from a name."""
    value = zlib.crc32(name.encode()) | (0x5041 << 32)  # "PA", to stay clear of other users
    return value
