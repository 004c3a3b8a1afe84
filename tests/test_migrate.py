"""Schema migrations: safe when processes start together, optional at start.

Two processes migrate one empty database at the same moment (released by one
barrier file): both succeed and the schema ends at head, on SQLite and
PostgreSQL. With ``migrate_on_start`` off the archive refuses a schema behind
head with a message naming ``pacs db upgrade``, and opens once that ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pacs.archive import Archive
from pacs.index.database import make_engine
from pacs.index.migrate import SchemaNotAtHead, current_revision, head_revision
from pacs.settings import Settings

_MIGRATE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pacs.index.database import make_engine
    from pacs.index.migrate import upgrade

    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    engine = make_engine(url)
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    upgrade(engine)
    """
)


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root}


def test_two_processes_migrating_at_once_both_succeed(database_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, database_url, str(flag), str(go)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 60
    while not all(flag.exists() for flag in ready):  # both connected and waiting
        assert time.monotonic() < deadline, "the migrating processes did not start"
        assert all(p.poll() is None for p in processes), "a migrating process exited early"
        time.sleep(0.01)
    go.touch()
    outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(outputs)
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()


def test_without_migrate_on_start_an_old_schema_is_refused_until_db_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, migrate_on_start=False
    )
    with pytest.raises(SchemaNotAtHead, match="pacs db upgrade"):
        Archive.open(settings)
    env = {
        **_env(),
        "PACS_DATA_DIR": str(settings.data_dir),
        "PACS_DATABASE_URL": database_url,
        "PACS_MIGRATE_ON_START": "false",
    }
    refused = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env={**env, "PACS_DICOM_PORT": "0", "PACS_HTTP_PORT": "0", "PACS_HL7_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2, refused.stderr
    assert "pacs db upgrade" in refused.stderr
    upgraded = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    archive = Archive.open(settings)
    try:
        assert archive.counts() == {"studies": 0, "series": 0, "instances": 0}
    finally:
        archive.close()
