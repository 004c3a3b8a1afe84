"""``INSERT ... ON CONFLICT DO NOTHING`` for the dialects we run on.

Concurrent associations often carry the first images of the same study; both
try to create the patient, study and series rows. Letting the database drop the
second insert is simpler and faster than catching and retrying.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, model: type[Any], conflict_columns: list[str]) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=conflict_columns)
    if dialect == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing(index_elements=conflict_columns)
    raise NotImplementedError(f"index database {dialect!r} is not supported (SQLite, PostgreSQL)")
