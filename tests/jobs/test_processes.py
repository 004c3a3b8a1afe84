"""Runner and scheduler processes on one PostgreSQL: no job twice, a killed worker's job runs
again once, one scheduler leader among `pacs serve --role jobs` processes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pydicom.uid import generate_uid
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.jobs.runner_child import EFFECT_TABLE
from tests.jobs.serve_role import child_env, serve_role
from tests.jobs.waiting import wait_until


@contextmanager
def _runner(
    url: str, tmp_path: Path, mode: str, lease_s: float = 60
) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.jobs.runner_child",
            url,
            str(tmp_path / "d"),
            mode,
            str(lease_s),
        ],
        env=child_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


@contextmanager
def _archive(url: str, tmp_path: Path, **settings: float) -> Iterator[Archive]:
    archive = Archive.open(Settings(data_dir=tmp_path / "d", database_url=url, **settings))
    with archive.engine.begin() as connection:
        connection.execute(text(EFFECT_TABLE))
    try:
        yield archive
    finally:
        archive.close()


def _effects(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        return [(k, p) for k, p in connection.execute(text("SELECT key, pid FROM job_effect"))]


def test_two_runner_processes_never_run_a_job_twice(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    with _archive(postgres_schema_url, tmp_path) as archive:
        with archive.sessions.begin() as session:  # one transaction: a quicker set-up
            for n in range(1000):
                archive.jobs.queue.enqueue("effect", {"key": f"k{n}"}, session=session)
        with ExitStack() as stack:
            runners = [
                stack.enter_context(_runner(postgres_schema_url, tmp_path, "count"))
                for _ in range(2)
            ]
            wait_until(lambda: archive.jobs.counts()["done"] == 1000, timeout=60)
        effects = _effects(archive.engine)
        assert len(effects) == 1000
        assert {key for key, _ in effects} == {f"k{n}" for n in range(1000)}  # each once
        assert {pid for _, pid in effects} == {runner.pid for runner in runners}  # both worked
        jobs, _ = archive.jobs.list(limit=1000)
        assert all(job.attempts == 1 for job in jobs)


def test_a_killed_runner_holding_a_lease_has_its_job_run_again_once(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    lease = 1.5
    with _archive(postgres_schema_url, tmp_path) as archive:
        job_id = archive.jobs.enqueue("effect", {"key": "only"})
        assert job_id is not None
        with _runner(postgres_schema_url, tmp_path, "block", lease) as doomed:
            wait_until(lambda: _effects(archive.engine) == [("started", doomed.pid)])
            held = archive.jobs.get(job_id)
            assert held.state == "running" and held.attempts == 1
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)
        with _runner(postgres_schema_url, tmp_path, "count", lease) as heir:
            wait_until(lambda: archive.jobs.get(job_id).state == "done", timeout=30)
            done = archive.jobs.get(job_id)
            assert done.attempts == 2 and done.worker is not None
            assert done.worker.split("/")[1] == str(heir.pid)
            assert done.updated_at >= held.lease_expires  # not before the dead one's lease lapsed
        assert sorted(_effects(archive.engine)) == sorted(
            [("started", doomed.pid), ("only", heir.pid)]
        )


def _leaders(engine: Engine) -> list[str]:
    """Application names of the sessions holding this schema's scheduler advisory lock."""
    with engine.connect() as connection:
        schema = connection.scalar(text("SELECT current_schema()"))
        key = zlib.crc32(f"pacs-scheduler:{schema}".encode())
        rows = connection.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi AND l.objid = :lo"
            ),
            {"hi": 0x5041, "lo": key},
        )
        return [name for (name,) in rows]


def _jobs_settings(url: str, name: str) -> dict[str, str]:
    return {
        "PACS_DATABASE_URL": str(make_url(url).update_query_dict({"application_name": name})),
        "PACS_STABLE_STUDY_SECONDS": "1.5",
    }


def test_one_scheduler_leader_across_two_serve_jobs_processes(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    url = postgres_schema_url
    with _archive(url, tmp_path) as archive, ExitStack() as stack:
        one = stack.enter_context(serve_role(tmp_path, "one", "jobs", _jobs_settings(url, "one")))
        first, first_log = one.process, one.log
        wait_until(lambda: _leaders(archive.engine) == ["one"], timeout=30, what="one leads")
        two = stack.enter_context(serve_role(tmp_path, "two", "jobs", _jobs_settings(url, "two")))
        second, second_log = two.process, two.log
        wait_until(lambda: b"serving role jobs" in second_log.read_bytes(), timeout=30)
        study = generate_uid()
        archive.ingest(io.BytesIO(to_bytes(ct_slice(study, size=8))), Origin("import"))
        wait_until(lambda: [c.kind for c in archive.changes()][-1:] == ["stable-study"])
        assert _leaders(archive.engine) == ["one"]
        assert b"now leads" not in second_log.read_bytes()

        first.send_signal(signal.SIGTERM)  # the leader stops; the other takes over
        assert first.wait(30) == 0
        wait_until(lambda: _leaders(archive.engine) == ["two"], timeout=30, what="two leads")
        archive.ingest(io.BytesIO(to_bytes(ct_slice(study, size=8))), Origin("import"))
        wait_until(lambda: [c.kind for c in archive.changes()].count("stable-study") == 2)
        assert second.poll() is None
    assert first_log.read_bytes().count(b"now leads") == 1
    assert second_log.read_bytes().count(b"now leads") == 1
