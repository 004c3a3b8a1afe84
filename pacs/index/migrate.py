"""Bring the index schema to the newest revision (on start and by ``pacs db upgrade``).

Several processes may start at once on one database (the nodes of a cluster,
``pacs serve`` beside a ``pacs db upgrade``): each would find the schema
behind and run the same revisions, and all but one would fail half-way on
tables that exist by then. Migrations therefore run under a lock held for the
whole upgrade transaction: a transaction-scoped advisory lock on PostgreSQL,
the database's write lock (``BEGIN IMMEDIATE``) on SQLite, which is one file.
Whoever waited finds the schema at head and has nothing left to do.

A deploy that migrates once, by ``pacs db upgrade``, sets ``migrate_on_start``
false; every process then only checks the schema (:func:`check_at_head`) and
refuses to start on one it does not know.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
# A signed 64-bit key of our own ("PA" above a name's CRC, as the other advisory locks).
MIGRATION_LOCK_KEY = zlib.crc32(b"pacs.index.migrate") | (0x5041 << 32)


class SchemaNotAtHead(RuntimeError):
    """The index schema is not the one this release needs, and we may not migrate it."""


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``, waiting for any other process migrating the same database."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        _lock_for_migration(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _lock_for_migration(connection: Connection) -> None:
    """Hold the migration lock until this transaction ends (commit or rollback)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    elif dialect == "sqlite":
        # pysqlite opens no transaction before DDL: take the write lock ourselves
        # (the connection waits for it up to its busy timeout).
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def head_revision(engine: Engine) -> str | None:
    """The newest revision this release knows."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_at_head(engine: Engine) -> None:
    """Raise :class:`SchemaNotAtHead`, saying what to do, unless the schema is at head."""
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        raise SchemaNotAtHead(
            f"the index schema is at revision {current or '(empty)'}, this release needs "
            f"{head}; migrate it once with `pacs db upgrade` (migrate_on_start is off), "
            "then start again"
        )
