"""Core statements on the DBAPI connection (pacs.index.dbapi), on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.index.database import make_engine
from pacs.index.dbapi import Prepared, dbapi_connection
from pacs.index.models import Instance, Study
from tests.dicom_factory import ct_slice, to_bytes

_STUDY_TIMES = update(Study).values(
    created_at=bindparam("at", type_=Study.__table__.c.created_at.type),
    study_description=bindparam("description"),
)
_COPY_INSTANCE = insert(Instance).from_select(
    [c.name for c in Instance.__table__.columns if c.name != "pk"],
    select(
        *(
            bindparam("uid") if c.name == "sop_instance_uid" else c
            for c in Instance.__table__.columns
            if c.name != "pk"
        )
    ).limit(1),
)


def _one_instance(archive: Archive) -> None:
    archive.ingest(io.BytesIO(to_bytes(ct_slice(index=1))), Origin("test"))


def test_values_are_converted_and_laid_out_as_the_engine_would(archive: Archive) -> None:
    """The stored values are byte for byte those of the same statement run by SQLAlchemy."""
    _one_instance(archive)
    values = {"at": datetime(2026, 12, 3, 7, 30, 15, 123456, tzinfo=UTC), "description": "Ngực"}
    raw = "SELECT created_at, study_description FROM study"
    engine = archive.engine
    with dbapi_connection(engine) as connection, contextlib.closing(connection.cursor()) as cur:
        Prepared(_STUDY_TIMES, engine.dialect).execute(cur, values)
        connection.commit()
    with engine.begin() as conn:
        ours = conn.exec_driver_sql(raw).one()
        conn.execute(_STUDY_TIMES, values)
        theirs = conn.exec_driver_sql(raw).one()
    assert tuple(ours) == tuple(theirs)
    assert theirs[1] == "Ngực"


def test_driver_errors_come_back_as_sqlalchemys_and_nothing_uncommitted_stays(
    archive: Archive,
) -> None:
    _one_instance(archive)
    engine = archive.engine
    at = datetime.now(UTC)
    with (
        pytest.raises(IntegrityError),
        dbapi_connection(engine) as connection,
        contextlib.closing(connection.cursor()) as cur,
    ):
        Prepared(_STUDY_TIMES, engine.dialect).execute(cur, {"at": at, "description": "lost"})
        # blob_key is unique too: the copy of the instance fails
        Prepared(_COPY_INSTANCE, engine.dialect).execute(cur, {"uid": "1.2.3.5"})
    with archive.engine.connect() as conn:  # the update went with the failed insert
        assert conn.execute(select(Study.study_description)).scalar_one() != "lost"
        assert conn.execute(select(func.count()).select_from(Instance)).scalar_one() == 1


def test_statements_relying_on_column_defaults_are_refused(archive: Archive) -> None:
    with pytest.raises(ValueError, match="bound value"):
        Prepared(insert(Study).values(study_uid=bindparam("uid")), archive.engine.dialect)


def test_a_database_out_of_reach_is_an_operational_error(archive: Archive, tmp_path: Path) -> None:
    url = archive.engine.url
    if url.get_backend_name() == "sqlite":
        folder = tmp_path / "gone"
        dead = make_engine(f"sqlite:///{folder / 'index.sqlite'}")
        shutil.rmtree(folder)  # make_engine created it (and the index file, owner-only)
    else:
        dead = make_engine(
            url.set(port=1).render_as_string(hide_password=False),
            connect_args={"connect_timeout": 2},
            pool_pre_ping=False,
        )
    try:
        with pytest.raises(OperationalError), dbapi_connection(dead):
            pass
    finally:
        dead.dispose()
