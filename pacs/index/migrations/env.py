"""Alembic environment: runs on the connection handed over by :mod:`pacs.index.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from pacs.index.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    from pacs.index.database import make_engine

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
else:
    _run(connection)
