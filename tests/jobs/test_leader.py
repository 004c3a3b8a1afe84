"""Leader election: one leader per database (SQLite lock file, PostgreSQL advisory lock)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from pacs.index.database import make_engine
from pacs.jobs.leader import AdvisoryLock, FileLock, leadership_for
from pacs.jobs.scheduler import PeriodicTasks, Scheduler


def test_sqlite_one_leader_per_database_file(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    first, second = leadership_for(engine), leadership_for(engine)
    assert isinstance(first, FileLock)
    assert first.try_lead() and first.try_lead()
    assert not second.try_lead()
    first.release()
    assert second.try_lead() and not first.try_lead()
    second.release()
    engine.dispose()


def test_postgresql_leader_and_takeover_when_its_session_dies(postgres_schema_url: str) -> None:
    one, two = make_engine(postgres_schema_url), make_engine(postgres_schema_url)
    first, second = leadership_for(one), leadership_for(two)
    assert isinstance(first, AdvisoryLock)
    ran: list[str] = []
    tasks = PeriodicTasks()
    tasks.every("note", 3600, lambda: ran.append("note"))
    leader, follower = Scheduler(tasks, first), Scheduler(tasks, second)
    leader.tick()
    follower.tick()
    assert leader.leading and not follower.leading and ran == ["note"]
    assert first._connection is not None
    pid = first._connection.scalar(text("SELECT pg_backend_pid()"))
    first._connection.commit()
    with two.connect() as connection:  # the leader's database session is cut off
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()
    leader.tick()
    assert not leader.leading  # it notices, and stops running tasks
    follower.tick()
    assert follower.leading and ran == ["note", "note"]  # the new leader runs every task at once
    follower.stop()
    leader.stop()
    one.dispose()
    two.dispose()
