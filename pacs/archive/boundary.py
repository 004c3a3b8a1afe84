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

from sqlalchemy import Engine, event
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
