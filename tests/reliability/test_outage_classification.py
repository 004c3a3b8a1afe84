"""Which database errors are outages (retry later) and which are not, from the real drivers.

A client told "503, retry later" for a constraint violation or a bug would
retry forever; a client told "500" for a locked or unreachable database would
give up on a healthy archive. The errors here are raised by SQLite and
PostgreSQL themselves, through an engine guarded like the facade's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from pacs.archive.boundary import guard_engine
from pacs.archive.errors import IndexUnavailable
from pacs.index.outage import is_outage


def test_sqlite_errors(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    guard_engine(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))

    with pytest.raises(OperationalError) as bug, engine.connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(bug.value, IndexUnavailable)  # a bug, not an outage
    with pytest.raises(IntegrityError) as duplicate, engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert not isinstance(duplicate.value, IndexUnavailable)

    holder = sqlite3.connect(path, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        with pytest.raises(IndexUnavailable) as locked, engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (2)"))
        assert isinstance(locked.value, OperationalError)  # core code still sees SQL's error
    finally:
        holder.rollback()
        holder.close()

    engine.dispose()
    gone = create_engine(f"sqlite:///{tmp_path / 'no' / 'folder.sqlite'}")
    guard_engine(gone)
    with pytest.raises(IndexUnavailable), gone.connect() as connection:
        connection.execute(text("SELECT 1"))


def test_postgresql_errors(postgres_schema_url: str) -> None:
    engine = create_engine(postgres_schema_url)
    guard_engine(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(ProgrammingError) as bug, engine.connect() as connection:
        connection.execute(text("SELEC 1"))
    assert not isinstance(bug.value, IndexUnavailable)
    with pytest.raises(IntegrityError) as duplicate, engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert not isinstance(duplicate.value, IndexUnavailable)
    with pytest.raises(IndexUnavailable), engine.begin() as connection:
        connection.execute(text("SET TRANSACTION READ ONLY"))
        connection.execute(text("INSERT INTO t VALUES (2)"))  # a standby after a fail-over
    engine.dispose()

    refused = create_engine(
        make_url(postgres_schema_url).set(port=1), connect_args={"connect_timeout": 2}
    )
    guard_engine(refused)
    with pytest.raises(IndexUnavailable), refused.connect() as connection:
        connection.execute(text("SELECT 1"))
    refused.dispose()


def test_errors_without_a_code_are_outages_only_when_operational() -> None:
    class OperationalError(Exception):  # a PEP 249 driver's class of that name
        pass

    class DataError(Exception):
        pass

    assert is_outage(OperationalError("server closed the connection unexpectedly"))
    assert not is_outage(DataError("value too long"))
    assert is_outage(DataError("anything"), disconnect=True)
