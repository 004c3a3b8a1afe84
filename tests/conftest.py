"""Shared fixtures: real index databases (SQLite and PostgreSQL), archives, DIMSE servers."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pacs.archive import Archive
from pacs.settings import Settings

POSTGRES_URL = os.environ.get(
    "PACS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_available() -> str | None:
    """``None`` when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {exc.__class__.__name__}: {exc}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    reason = _postgres_available()
    if reason:
        if IN_CI:
            pytest.fail(reason + " (CI=true: PostgreSQL is required)")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_url(postgres_server: str) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, so concurrent test runs never collide."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on the embedded default, for tests whose subject is not the database."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def archive(settings: Settings) -> Iterator[Archive]:
    archive = Archive.open(settings)
    yield archive
    archive.close()


@pytest.fixture
def sqlite_archive(sqlite_settings: Settings) -> Iterator[Archive]:
    archive = Archive.open(sqlite_settings)
    yield archive
    archive.close()


@pytest.fixture(scope="session")
def dcmtk() -> None:
    """DCMTK's command-line tools; ``make test`` installs them (Debian ``dcmtk``)."""
    if shutil.which("storescu") is None:
        message = "DCMTK (storescu) not installed: run `make test`, which installs Debian dcmtk"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
