"""Where database outages become :class:`~pacs.archive.errors.IndexUnavailable`.

The facade installs :func:`guard_engine` on the engine it owns, so every SQL
path that runs on it (queries, ingest, authentication, the audit trail)
reports an outage by meaning, without each caller catching SQLAlchemy's
exceptions. The exception raised is also the ``OperationalError`` SQLAlchemy
would have raised: core code that already handles SQL errors (rolling back,
dropping a just-written blob, logging a lost audit record) keeps doing so,
while doors catch only :class:`IndexUnavailable` and never import SQLAlchemy.
Errors that are not outages (a constraint violated, a bug in a statement) are
left alone: a client must not be told to retry what can never succeed.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError

from pacs.archive.errors import IndexUnavailable
from pacs.index.outage import is_outage


class IndexOutage(IndexUnavailable, OperationalError):
    """An outage seen through SQLAlchemy: :class:`IndexUnavailable` to doors, SQL's to the core."""

    def __str__(self) -> str:
        return f"index unavailable: {self.orig.__class__.__name__}: {self.orig}".strip()


def guard_engine(engine: Engine) -> None:
    """Raise :class:`IndexOutage` instead of SQLAlchemy's error when the index is unavailable."""
    if not event.contains(engine, "handle_error", _translate):
        event.listen(engine, "handle_error", _translate)


def as_unavailable(exc: DBAPIError) -> IndexUnavailable | None:
    """The outage ``exc`` stands for, or ``None`` when it is not one (for errors raised
    outside the engine's statement path, such as the writer's DBAPI connection)."""
    if isinstance(exc, IndexUnavailable):
        return exc
    if exc.orig is None or not is_outage(exc.orig, disconnect=exc.connection_invalidated):
        return None
    return IndexOutage(exc.statement, exc.params, exc.orig, hide_parameters=True)


def _translate(context: ExceptionContext) -> BaseException | None:
    original = context.original_exception
    if isinstance(context.sqlalchemy_exception, IndexUnavailable):
        return None
    if not is_outage(original, disconnect=context.is_disconnect):
        return None
    return IndexOutage(
        context.statement,
        context.parameters,
        original,
        hide_parameters=True,
        connection_invalidated=context.is_disconnect,
    )


class WriteWatch:
    """Whether the index took the last write it was given, for /health.

    A database can answer ``SELECT 1`` and still refuse every write (a disk
    full, a read-only standby after a fail-over, a lock held elsewhere); only a
    write shows it. The facade reports each write's outcome here, so /health
    says "unwritable since ..." from the first refused write until one succeeds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: datetime | None = None
        self._reason = ""

    def failed(self, exc: BaseException) -> None:
        """Note a refused write, if the index (not the store) refused it."""
        cause = _index_cause(exc)
        if cause is None:
            return
        with self._lock:
            if self._since is None:
                self._since = datetime.now(UTC)
            self._reason = cause

    def succeeded(self) -> None:
        with self._lock:
            self._since = None

    def status(self) -> str:
        """'ok', or since when and why the index refuses writes."""
        with self._lock:
            if self._since is None:
                return "ok"
            return f"unwritable since {self._since.isoformat(timespec='seconds')}: {self._reason}"


def _index_cause(exc: BaseException | None) -> str | None:
    """The driver's reason, when the chain of ``exc`` holds an index error; else None."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            return f"{exc.orig.__class__.__name__}: {exc.orig}"[:200]
        if isinstance(exc, IndexUnavailable):
            return str(exc)[:200]
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def probe_write(engine: Engine) -> None:
    """Raise the index's error if it refuses a write now; the probe is rolled back.

    A no-op UPDATE of alembic's one-row table needs the write lock and a
    writable database, and changes nothing. SQLite waits at most a second for
    a lock here (not its 30 s busy timeout): /health must answer quickly.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        waited = connection.exec_driver_sql("PRAGMA busy_timeout").scalar() if sqlite else None
        try:
            if sqlite:
                connection.exec_driver_sql("PRAGMA busy_timeout=1000")
            connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
        finally:
            connection.rollback()
            if sqlite:
                connection.exec_driver_sql(f"PRAGMA busy_timeout={int(waited or 0)}")
