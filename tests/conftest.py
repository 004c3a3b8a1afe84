"""Shared fixtures: real index databases (SQLite and PostgreSQL), archives, DIMSE servers."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.dimse.server import DimseServer
from pacs.jobs import RunningJobs
from pacs.settings import Settings

POSTGRES_URL = os.environ.get(
    "PACS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With the DIMSE fast path off (``PACS_DIMSE_FASTPATH=false``), its own tests do not run.

    They check the shims over pynetdicom's internals, which are then not installed;
    every other DIMSE test runs on stock pynetdicom (see ``make test``).
    """
    from pacs.dimse import fastpath

    try:
        settings = Settings()
    except Exception:  # an unusable settings file: the tests that need one will say so
        return
    if fastpath.wanted(settings):
        return
    kept = [item for item in items if item.get_closest_marker("fastpath") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


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


ADMIN_PASSWORD = "admin-test-password"


@pytest.fixture
def admin_auth(archive: Archive) -> tuple[str, str]:
    """(user name, password) of an admin account in the archive under test."""
    create_account(archive.sessions, "admin", ADMIN_PASSWORD, Role.ADMIN)
    return ("admin", ADMIN_PASSWORD)


@pytest.fixture
def client(archive: Archive, admin_auth: tuple[str, str]) -> Iterator[TestClient]:
    """The HTTP app in-process, logged in as the admin (HTTP Basic)."""
    from app.http.app import create_app

    with TestClient(create_app(archive)) as test_client:
        test_client.auth = admin_auth
        yield test_client


@pytest.fixture
def anonymous_client(archive: Archive) -> Iterator[TestClient]:
    from app.http.app import create_app

    with TestClient(create_app(archive)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_http(archive: Archive) -> Iterator[str]:
    """A real HTTP server (uvicorn in a thread) for clients such as dicomweb-client."""
    import uvicorn

    from app.http.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(archive), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test HTTP server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def http(live_http: str, admin_auth: tuple[str, str]) -> Iterator[requests.Session]:
    """An HTTP session logged in as the admin (HTTP Basic), for requests to ``live_http``."""
    session = requests.Session()
    session.auth = admin_auth
    yield session
    session.close()


@pytest.fixture
def web(live_http: str, http: requests.Session) -> DICOMwebClient:
    """dicomweb-client, a third-party DICOMweb client, on the live server as the admin.

    Some modules name a TestClient ``web`` instead; theirs wins there."""
    return DICOMwebClient(url=f"{live_http}/dicom-web", session=http)


@pytest.fixture
def runners(archive: Archive) -> Iterator[RunningJobs]:
    """The archive's job runners in this process (no scheduler), for tests that wait on jobs."""
    running = archive.jobs.start(runners=True, scheduler=False)
    yield running
    running.stop()


@pytest.fixture
def dimse_server(archive: Archive) -> Iterator[DimseServer]:
    """The archive's DIMSE listener on a free loopback port (AE title from settings, "PACS")."""
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    yield server
    server.stop(grace=2)


OHIF_CACHE = Path(os.environ.get("PACS_OHIF_CACHE", Path.home() / ".cache" / "pacs-ohif"))


@pytest.fixture(scope="session")
def ohif_tarball() -> Path:
    """OHIF's npm tarball (``npm pack @ohif/app``), fetched once into a cache folder."""
    from viewer.ohif import OhifInstallError, fetch_tarball

    if shutil.which("npm") is None and not IN_CI:
        pytest.skip("npm not installed: OHIF cannot be fetched")
    try:
        return fetch_tarball(OHIF_CACHE)
    except OhifInstallError as exc:
        if IN_CI:
            raise
        pytest.skip(f"OHIF not fetchable here: {exc}")
