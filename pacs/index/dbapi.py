"""Core statements run straight on a DBAPI connection: the few that ingest runs per instance.

``Connection.execute`` builds an execution context, wraps the cursor in a
result and, with ``Engine.connect``, checks a pooled connection out and resets
it on return: about 0.1 ms per statement here, five times what SQLite takes
to find an instance by its UID or to insert one. An instance of a known series
costs three statements, so that machinery was a fifth of ingest.

The statements stay Core constructs, compiled once per dialect by SQLAlchemy
(its SQL, its placeholders, its type conversions); only their execution skips
the engine. Errors come back as SQLAlchemy's exception classes, so callers
catch ``IntegrityError`` and ``SQLAlchemyError`` as before, and a connection
the driver reports broken is invalidated instead of going back to the pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class Prepared:
    """A Core statement compiled for one dialect, with its parameters laid out for the driver."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if compiled.escaped_bind_names:
            raise ValueError("bind names that need escaping are not supported here")
        if compiled.insert_prefetch or compiled.update_prefetch:
            # SQLAlchemy computes those column defaults while it executes.
            raise ValueError("every column the statement writes must have a bound value")
        self.sql = compiled.string
        # Positional paramstyles (SQLite's qmark) take values in placeholder order;
        # named ones (psycopg's pyformat) take the mapping.
        self._order: Sequence[str] | None = compiled.positiontup
        # Literal values the statement carries (a LIMIT, say) are binds too.
        self._literals = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        self._convert: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._convert[name] = process

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """``values`` by bind name, converted as SQLAlchemy would and in the driver's layout."""
        if self._literals:
            values = {**self._literals, **values}
        if self._convert:
            values = {
                name: (self._convert[name](value) if name in self._convert else value)
                for name, value in values.items()
            }
        if self._order is None:
            return values
        return [values[name] for name in self._order]

    def execute(self, cursor: Any, values: Mapping[str, Any]) -> Any:
        cursor.execute(self.sql, self.parameters(values))
        return cursor


@contextlib.contextmanager
def dbapi_connection(engine: Engine) -> Iterator[PoolProxiedConnection]:
    """A pooled DBAPI connection; DBAPI errors leave as SQLAlchemy's, uncommitted work rolled back.

    Returning it to the pool rolls back whatever was not committed (the pool's
    reset on return). ``Engine.raw_connection`` raises the driver's own error
    when it cannot connect; that is translated too.
    """
    dialect = engine.dialect
    try:
        connection = engine.raw_connection()
    except dialect.loaded_dbapi.Error as exc:
        raise _translated(exc, dialect, broken=False) from exc
    try:
        yield connection
    except dialect.loaded_dbapi.Error as exc:
        broken = dialect.is_disconnect(exc, connection.dbapi_connection, None)
        if broken:
            connection.invalidate(exc)
        raise _translated(exc, dialect, broken) from exc
    finally:
        connection.close()


def _translated(exc: Exception, dialect: Dialect, broken: bool) -> StatementError:
    """The SQLAlchemy exception (``IntegrityError``, ``OperationalError``...) for a driver's."""
    return DBAPIError.instance(
        None,
        None,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=broken,
        dialect=dialect,
    )
