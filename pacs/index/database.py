"""Engine and session factory for SQLite (embedded) and PostgreSQL (production).

SQLite runs in WAL mode with ``synchronous=FULL``: a commit has reached the
disk before a modality is told its image is stored, and readers (queries)
never block the writer (ingest).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, busy_timeout: float = 30.0, **kwargs: Any) -> Engine:
    """An engine for ``url``; on SQLite a write waits ``busy_timeout`` seconds for a lock.

    The archive passes ``index_busy_timeout`` (a few seconds): a write that meets
    another process's write lock answers "retry later" soon instead of holding
    the request, its thread and its client for half a minute. Maintenance
    (migrations) keeps the long default.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout))
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # We ship psycopg 3; accept plain postgresql:// URLs from users.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def _private_file(path: Path) -> None:
    """Create the index file readable by its owner only (it holds patient data and account
    hashes); SQLite gives its -wal and -shm files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    mode = path.stat().st_mode
    if mode & 0o077:
        with contextlib.suppress(PermissionError):  # not ours: leave it to its owner
            path.chmod(mode & 0o700)


def _sqlite_pragmas(busy_timeout: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _use_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # DICOM matching is case-sensitive except for person names (matched on folded
        # keys); PostgreSQL's LIKE already is, SQLite's must be told, so both doors and
        # both databases agree.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    return on_connect


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _use_wal(cursor: sqlite3.Cursor, busy_timeout: float) -> None:
    """Switch the database to WAL, waiting up to ``busy_timeout`` for another process.

    SQLite answers SQLITE_BUSY at once, without its busy handler, when the journal mode
    is changed while another connection opens the same new file (the handler could
    deadlock there): two processes starting on a fresh data folder failed one run in
    four (tests/test_migrate.py). The mode is kept in the file, so the retry is needed
    only while the first process sets it up.
    """
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
